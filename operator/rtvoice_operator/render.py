"""Pure functions: one VoiceAgent → the identity, labels and metadata of its children, its ConfigMap and
its bridge Deployment (Services and NetworkPolicy: :mod:`.render_net`; autoscalers: :mod:`.render_scale`;
the full list: :mod:`.children`).

No I/O here; :mod:`rtvoice_operator.reconcile` applies the result with server-side apply. Children are
named ``rtvoice-bridge-{agent}`` (:mod:`rtvoice.core.addresses`), labelled, and owned by the VoiceAgent
through a controller ownerReference. A hash of the rendered settings sits on the pod template, so any
settings change rolls the Deployment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import yaml

from rtvoice.core.addresses import bridge_service_name
from rtvoice.core.settings import AgentSettings
from rtvoice_operator import (
    AGENT_API_VERSION,
    AGENT_LABEL,
    BRIDGE_PORT,
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    KIND,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    PART_OF_LABEL,
    SETTINGS_HASH_ANNOTATION,
)
from rtvoice_operator.config import OperatorConfig

AGENT_FILE_DIR = "/etc/rtvoice/agent"
AGENT_FILE_KEY = "agent.yaml"
API_KEY_DIR = "/etc/rtvoice/provider"
API_KEY_FILE = "api-key"
INTERNAL_TOKEN_DIR = "/etc/rtvoice/internal"
INTERNAL_TOKEN_KEY = "token"  # key of the internal-auth Secret
METRICS_PATH = "/metrics"
LOCAL_ENGINE_PORT = 8765
# Spec fields that shape the Deployment, not a bridge: kept out of agent.yaml (camelCase names).
NOT_IN_AGENT_FILE = frozenset({"replicas", "autoscaling", "terminationGracePeriodSeconds"})
HEALTH_PROBE_COMMAND = ("python", "-m", "rtvoice_operator.health", "--grpc")


@dataclass(frozen=True)
class AgentRef:
    """The identity of one VoiceAgent: ``name``, ``namespace``, ``uid`` (for ownerReferences)."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> AgentRef:
        """From a VoiceAgent object as the API returns it (``metadata.name/namespace/uid``)."""
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def child_name(agent_name: str) -> str:
    """Name of the agent's children (ConfigMap, Service, Deployment, ...): ``rtvoice-bridge-{agent_name}``."""
    return bridge_service_name(agent_name)


def selector_labels(agent_name: str) -> dict[str, str]:
    """Pod selector of the agent's Deployment and Service (immutable for the agent's lifetime)."""
    return {NAME_LABEL: "rtvoice-bridge", AGENT_LABEL: agent_name}


def child_labels(agent_name: str) -> dict[str, str]:
    """All labels of a child; ``managed-by: rtvoice-operator`` is what the operator's watches select."""
    return {
        **selector_labels(agent_name),
        INSTANCE_LABEL: agent_name,
        COMPONENT_LABEL: "realtime-bridge",
        PART_OF_LABEL: "rtvoice",
        MANAGED_BY_LABEL: "rtvoice-operator",
    }


def owner_reference(agent: AgentRef) -> dict[str, Any]:
    """The controller ownerReference pointing at the VoiceAgent (deleting it deletes the children)."""
    return {
        "apiVersion": AGENT_API_VERSION,
        "kind": KIND,
        "name": agent.name,
        "uid": agent.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(agent: AgentRef, name: str | None = None) -> dict[str, Any]:
    """``metadata`` of a child: ``name`` (default :func:`child_name`), namespace, labels, owner."""
    return {
        "name": name or child_name(agent.name),
        "namespace": agent.namespace,
        "labels": child_labels(agent.name),
        "ownerReferences": [owner_reference(agent)],
    }


def agent_file_text(agent: AgentRef, settings: AgentSettings) -> str:
    """The bridge's ``agent.yaml``: a VoiceAgent document with the camelCase settings (no secrets), less
    the fields about the pod count and lifetime (:data:`NOT_IN_AGENT_FILE`): the bridge does not use them,
    and leaving them out keeps a scale change from rolling every pod (the file's hash is on the template).
    """
    spec = {k: v for k, v in settings.to_public_dict().items() if k not in NOT_IN_AGENT_FILE}
    doc = {
        "apiVersion": AGENT_API_VERSION,
        "kind": KIND,
        "metadata": {"name": agent.name, "namespace": agent.namespace},
        "spec": spec,
    }
    return yaml.safe_dump(doc, sort_keys=True)


def settings_hash(agent_file: str) -> str:
    """First 16 hex digits of the SHA-256 of the agent file text (pod-template annotation)."""
    return hashlib.sha256(agent_file.encode("utf-8")).hexdigest()[:16]


def render_configmap(agent: AgentRef, settings: AgentSettings) -> dict[str, Any]:
    """ConfigMap ``rtvoice-bridge-{name}`` holding ``agent.yaml`` (see :func:`agent_file_text`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(agent),
        "data": {AGENT_FILE_KEY: agent_file_text(agent, settings)},
    }


def _local_engine_container(settings: AgentSettings, cfg: OperatorConfig) -> dict[str, Any]:
    args = [
        "local-realtime",
        "--host",
        "127.0.0.1",
        "--port",
        str(LOCAL_ENGINE_PORT),
        *settings.local_engine.cli_args(),
    ]
    return {
        "name": "local-engine",
        "image": cfg.bridge_image,
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,
        "ports": [{"name": "engine", "containerPort": LOCAL_ENGINE_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "tcpSocket": {"port": LOCAL_ENGINE_PORT},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": LOCAL_ENGINE_PORT},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": cfg.engine_resources,
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def prestop_delay_s(grace_s: int, cfg: OperatorConfig) -> int:
    """The pre-stop sleep (s): the operator's, shortened so it leaves at least 6 s of a short grace."""
    return max(0, min(cfg.prestop_delay_s, grace_s - 6))


def drain_timeout_s(grace_s: int, cfg: OperatorConfig) -> int:
    """How long (s) a stopping bridge lets live calls continue: the termination grace ``grace_s`` minus the
    pre-stop delay minus 5 s to end the calls and exit before the kubelet's SIGKILL; at least 1 s."""
    return max(1, grace_s - prestop_delay_s(grace_s, cfg) - 5)


def _secret_volumes(settings: AgentSettings, cfg: OperatorConfig) -> list[tuple[dict[str, Any], str, str]]:
    """``(volume, mount dir, file flag)`` for each Secret the bridge reads as a file: the provider API key
    (``credentials.secretRef``) and the internal token. Mounted whole (no ``subPath``), so the kubelet
    refreshes a rotated Secret in the running pod."""
    found = []
    ref = settings.credentials.secret_ref
    if ref is not None:
        volume = {
            "name": "api-key",
            "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": API_KEY_FILE}]},
        }
        found.append((volume, API_KEY_DIR, "--api-key-file"))
    if cfg.internal_token_secret:
        items = [{"key": INTERNAL_TOKEN_KEY, "path": INTERNAL_TOKEN_KEY}]
        volume = {
            "name": "internal-token",
            "secret": {"secretName": cfg.internal_token_secret, "items": items},
        }
        found.append((volume, INTERNAL_TOKEN_DIR, "--internal-token-file"))
    return found


def _bridge_container(settings: AgentSettings, cfg: OperatorConfig, grace_s: int) -> dict[str, Any]:
    args = [
        "bridge",
        "--host",
        "0.0.0.0",
        "--port",
        str(BRIDGE_PORT),
        "--agent-file",
        f"{AGENT_FILE_DIR}/{AGENT_FILE_KEY}",
        "--recorder",
        cfg.recorder_address,
        "--drain-timeout-s",
        str(drain_timeout_s(grace_s, cfg)),
        "--metrics-port",
        str(cfg.metrics_port),
    ]
    if settings.provider == "local":
        args += ["--provider-url", f"ws://127.0.0.1:{LOCAL_ENGINE_PORT}/v1/realtime"]
    mounts = [
        {"name": "agent", "mountPath": AGENT_FILE_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for volume, directory, flag in _secret_volumes(settings, cfg):
        file = volume["secret"]["items"][0]["path"]
        args += [flag, f"{directory}/{file}"]
        mounts.append({"name": volume["name"], "mountPath": directory, "readOnly": True})
    return {
        "name": "bridge",
        "image": cfg.bridge_image,
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,
        "ports": [
            {"name": "grpc", "containerPort": BRIDGE_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": cfg.metrics_port, "protocol": "TCP"},
        ],
        # The bridge's gRPC health service answers NOT_SERVING while it drains; exec, not a `grpc` probe,
        # because grpc probes need Kubernetes >= 1.24.
        "readinessProbe": {
            "exec": {"command": [*HEALTH_PROBE_COMMAND, f"127.0.0.1:{BRIDGE_PORT}"]},
            "periodSeconds": 5,
            "timeoutSeconds": 4,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "tcpSocket": {"port": BRIDGE_PORT},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # Keep serving while the endpoint leaves the Services, then SIGTERM starts the drain of live calls,
        # bounded by terminationGracePeriodSeconds.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(prestop_delay_s(grace_s, cfg))]}}},
        "resources": cfg.bridge_resources,
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }


def scrape_annotations(cfg: OperatorConfig) -> dict[str, str]:
    """The ``prometheus.io/*`` pod annotations that annotation-driven Prometheus scrape configs follow."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(cfg.metrics_port),
        "prometheus.io/path": METRICS_PATH,
    }


def render_deployment(agent: AgentRef, settings: AgentSettings, cfg: OperatorConfig) -> dict[str, Any]:
    """Deployment ``rtvoice-bridge-{name}`` running ``rtvoice bridge`` (plus the offline engine as a
    sidecar when ``provider: local``), rolling one extra pod at a time so live calls keep their bridge.

    With ``spec.autoscaling`` the Deployment leaves ``replicas`` to the autoscaler (the field is not
    applied, so the operator does not fight the HorizontalPodAutoscaler). The termination grace is
    ``spec.terminationGracePeriodSeconds`` or the operator's default; the drain timeout follows it.
    """
    grace_s = cfg.grace_s(settings.termination_grace_period_seconds)
    containers = [_bridge_container(settings, cfg, grace_s)]
    if settings.provider == "local":
        containers.append(_local_engine_container(settings, cfg))
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": [
            {"name": "agent", "configMap": {"name": child_name(agent.name)}},
            {"name": "tmp", "emptyDir": {}},
            *(volume for volume, _, _ in _secret_volumes(settings, cfg)),
        ],
    }
    if cfg.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in cfg.image_pull_secrets]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(agent.name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": child_labels(agent.name),
                "annotations": {
                    SETTINGS_HASH_ANNOTATION: settings_hash(agent_file_text(agent, settings)),
                    **scrape_annotations(cfg),
                },
            },
            "spec": pod_spec,
        },
    }
    if settings.autoscaling is None:
        spec = {"replicas": settings.replicas, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": child_metadata(agent), "spec": spec}
