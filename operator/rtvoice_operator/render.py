"""Pure functions: one VoiceAgent → the ConfigMap, Service and Deployment of its realtime bridge.

No I/O here; :mod:`rtvoice_operator.reconcile` applies the result with server-side apply. Every child is
named ``rtvoice-bridge-{agent}`` (the ingress routes ``/v1/agents/{ns}/{name}`` to
``rtvoice-bridge-{name}.{ns}.svc.cluster.local:50051``), labelled, and owned by the VoiceAgent through a
controller ownerReference. A hash of the rendered settings sits on the pod template, so any settings
change rolls the Deployment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import yaml

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

CHILD_PREFIX = "rtvoice-bridge-"
AGENT_FILE_DIR = "/etc/rtvoice"
AGENT_FILE_KEY = "agent.yaml"
API_KEY_ENV = "RTVOICE_PROVIDER_API_KEY"
LOCAL_ENGINE_PORT = 8765
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
    """Name of the agent's ConfigMap, Service and Deployment: ``rtvoice-bridge-{agent_name}``."""
    return CHILD_PREFIX + agent_name


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


def _metadata(agent: AgentRef) -> dict[str, Any]:
    return {
        "name": child_name(agent.name),
        "namespace": agent.namespace,
        "labels": child_labels(agent.name),
        "ownerReferences": [owner_reference(agent)],
    }


def agent_file_text(agent: AgentRef, settings: AgentSettings) -> str:
    """The bridge's ``agent.yaml``: a VoiceAgent document with the full camelCase settings (no secrets)."""
    doc = {
        "apiVersion": AGENT_API_VERSION,
        "kind": KIND,
        "metadata": {"name": agent.name, "namespace": agent.namespace},
        "spec": settings.to_public_dict(),
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
        "metadata": _metadata(agent),
        "data": {AGENT_FILE_KEY: agent_file_text(agent, settings)},
    }


def render_service(agent: AgentRef) -> dict[str, Any]:
    """ClusterIP Service ``rtvoice-bridge-{name}`` exposing the bridge's gRPC port 50051."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(agent),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(agent.name),
            "ports": [
                {
                    "name": "grpc",
                    "port": BRIDGE_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                }
            ],
        },
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


def drain_timeout_s(cfg: OperatorConfig) -> int:
    """How long (s) a stopping bridge lets live calls continue: the termination grace minus the pre-stop
    delay minus 5 s to end the calls and exit before the kubelet's SIGKILL; at least 1 s."""
    return max(1, cfg.termination_grace_s - cfg.prestop_delay_s - 5)


def _bridge_container(settings: AgentSettings, cfg: OperatorConfig) -> dict[str, Any]:
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
        str(drain_timeout_s(cfg)),
    ]
    if settings.provider == "local":
        args += ["--provider-url", f"ws://127.0.0.1:{LOCAL_ENGINE_PORT}/v1/realtime"]
    env: list[dict[str, Any]] = []
    ref = settings.credentials.secret_ref
    if ref is not None:
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    container: dict[str, Any] = {
        "name": "bridge",
        "image": cfg.bridge_image,
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,
        "ports": [{"name": "grpc", "containerPort": BRIDGE_PORT, "protocol": "TCP"}],
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
        # Keep serving while the endpoint leaves the Service, then SIGTERM starts the drain of live calls,
        # bounded by terminationGracePeriodSeconds.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(cfg.prestop_delay_s)]}}},
        "resources": cfg.bridge_resources,
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "agent", "mountPath": AGENT_FILE_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if env:
        container["env"] = env
    return container


def render_deployment(agent: AgentRef, settings: AgentSettings, cfg: OperatorConfig) -> dict[str, Any]:
    """Deployment ``rtvoice-bridge-{name}`` running ``rtvoice bridge`` (plus the offline engine as a
    sidecar when ``provider: local``), rolling one extra pod at a time so live calls keep their bridge.
    """
    containers = [_bridge_container(settings, cfg)]
    if settings.provider == "local":
        containers.append(_local_engine_container(settings, cfg))
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": cfg.termination_grace_s,
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
        ],
    }
    if cfg.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in cfg.image_pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(agent),
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": selector_labels(agent.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": child_labels(agent.name),
                    "annotations": {
                        SETTINGS_HASH_ANNOTATION: settings_hash(agent_file_text(agent, settings))
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def render_children(agent: AgentRef, settings: AgentSettings, cfg: OperatorConfig) -> list[dict[str, Any]]:
    """All children in apply order: ConfigMap (mounted by the pods), Service, Deployment."""
    return [render_configmap(agent, settings), render_service(agent), render_deployment(agent, settings, cfg)]
