"""Scale-out children of an agent, without a cluster: headless Service and bridgeAddress, autoscalers
(HPA, KEDA ScaledObject), termination grace and drain, NetworkPolicy, Secret files, metrics scraping."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from rtvoice.core.addresses import (
    MAX_AGENT_NAME_LENGTH,
    bridge_address,
    bridge_headless_service_name,
    bridge_service_name,
)
from rtvoice.core.settings import AgentSettings, SettingsError, parse_settings
from rtvoice_operator import SETTINGS_HASH_ANNOTATION
from rtvoice_operator.children import render_children, stale_kinds
from rtvoice_operator.conditions import build_status
from rtvoice_operator.config import OperatorConfig, OperatorConfigError
from rtvoice_operator.render import AgentRef, drain_timeout_s, render_deployment
from rtvoice_operator.render_net import render_headless_service, render_network_policy, render_service
from rtvoice_operator.render_scale import render_scaled_object, sessions_query

AGENT = AgentRef(name="support", namespace="voice", uid="0b7e6c1e-0000-4000-8000-000000000002")
KEY = {"secretRef": {"name": "openai", "key": "apiKey"}}
SCALING = {"minReplicas": 2, "maxReplicas": 8, "targetSessionsPerPod": 12}
KEDA = OperatorConfig(autoscaler="keda", keda_prometheus_address="http://prometheus.monitoring.svc:9090")

# KEDA's ScaledObject (keda.sh/v1alpha1) as its CRD defines the parts we write, tightened to reject any
# field KEDA does not know (its CRD is structural: the API server would silently prune those).
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_POLICY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "value", "periodSeconds"],
    "properties": {"type": {"enum": ["Pods", "Percent"]}, "value": _INT32, "periodSeconds": _INT32},
}
_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": _INT32,
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {"type": "array", "items": _POLICY},
    },
}
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleUp": _RULES, "scaleDown": _RULES},
                                },
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}


def _settings(**extra: Any) -> AgentSettings:
    return parse_settings({"provider": "openai", "credentials": KEY, **extra})


def _kinds(children: list[dict[str, Any]]) -> list[str]:
    return [c["kind"] for c in children]


def test_bridge_address_is_the_headless_service_in_the_cluster_domain() -> None:
    assert (
        bridge_address("support", "voice")
        == "dns:///rtvoice-bridge-support-headless.voice.svc.cluster.local:50051"
    )
    assert (
        bridge_address("a", "b", "corp.internal.")
        == "dns:///rtvoice-bridge-a-headless.b.svc.corp.internal:50051"
    )
    with pytest.raises(ValueError, match="cluster domain"):
        bridge_address("a", "b", "")
    longest = "a" * MAX_AGENT_NAME_LENGTH
    assert len(bridge_headless_service_name(longest)) == 63  # still a DNS-1035 label
    assert bridge_service_name("x") == "rtvoice-bridge-x"


def test_headless_service_lists_only_ready_pods_with_the_clusterip_selector() -> None:
    headless, clusterip = render_headless_service(AGENT), render_service(AGENT)
    assert headless["metadata"]["name"] == "rtvoice-bridge-support-headless"
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is False
    assert headless["spec"]["selector"] == clusterip["spec"]["selector"]
    assert headless["spec"]["ports"] == clusterip["spec"]["ports"]
    assert clusterip["spec"]["type"] == "ClusterIP"  # kept for simple clients
    assert headless["metadata"]["ownerReferences"][0]["uid"] == AGENT.uid


def test_status_publishes_the_bridge_address() -> None:
    status = build_status(
        generation=1,
        previous=None,
        config_problems=[],
        deployment=None,
        now="T",
        bridge_address=bridge_address(AGENT.name, AGENT.namespace, "corp.internal"),
    )
    assert status["bridgeAddress"] == "dns:///rtvoice-bridge-support-headless.voice.svc.corp.internal:50051"
    conds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conds["Reconciling"] == ("True", "Creating") and conds["Stalled"][0] == "False"


def test_autoscaling_renders_an_hpa_on_live_calls_and_frees_replicas() -> None:
    children = render_children(AGENT, _settings(replicas=3, autoscaling=SCALING), OperatorConfig())
    assert _kinds(children) == ["ConfigMap", "Service", "Service", "Deployment", "HorizontalPodAutoscaler"]
    deployment, hpa = children[3], children[4]
    assert "replicas" not in deployment["spec"]  # the HPA owns it; applying it would fight the HPA
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "rtvoice-bridge-support",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 8)
    (metric,) = spec["metrics"]
    assert metric == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "rtvoice_bridge_active_sessions"},
            "target": {"type": "AverageValue", "averageValue": "12"},
        },
    }
    assert spec["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    for child in children:
        kubernetes_validate.validate(child, "1.30.0", strict=True)
    assert stale_kinds(children, OperatorConfig()) == []


def test_without_autoscaling_the_spec_sets_replicas_and_old_autoscalers_are_stale() -> None:
    children = render_children(AGENT, _settings(replicas=3), KEDA)
    assert children[-1]["kind"] == "Deployment" and children[-1]["spec"]["replicas"] == 3
    assert stale_kinds(children, KEDA) == [
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("keda.sh/v1alpha1", "ScaledObject"),
    ]
    assert stale_kinds(children, OperatorConfig()) == [("autoscaling/v2", "HorizontalPodAutoscaler")]


def test_keda_renders_a_scaled_object_in_keda_shape() -> None:
    children = render_children(AGENT, _settings(autoscaling=SCALING), KEDA)
    scaled = children[-1]
    assert scaled["kind"] == "ScaledObject" and "replicas" not in children[-2]["spec"]
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "rtvoice-bridge-support"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 8)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus.monitoring.svc:9090"
    assert meta["threshold"] == "12"  # KEDA: desired pods = ceil(query / threshold)
    assert meta["query"] == sessions_query(AGENT)
    assert (
        'namespace="voice"' in meta["query"]
        and 'pod=~"rtvoice-bridge-support-[a-z0-9]+-[a-z0-9]+"' in meta["query"]
    )
    assert stale_kinds(children, KEDA) == [("autoscaling/v2", "HorizontalPodAutoscaler")]  # a switch from hpa
    broken = render_scaled_object(AGENT, _settings(autoscaling=SCALING).autoscaling, KEDA)  # type: ignore[arg-type]
    broken["spec"]["triggers"][0]["metadata"]["threshold"] = 12
    with pytest.raises(jsonschema.ValidationError):  # KEDA's metadata is map[string]string
        jsonschema.validate(broken, SCALED_OBJECT_SCHEMA)


def test_autoscaling_bounds_are_checked_by_the_settings_model() -> None:
    with pytest.raises(SettingsError, match="minReplicas 9 > maxReplicas 3"):
        _settings(autoscaling={"minReplicas": 9, "maxReplicas": 3})
    with pytest.raises(SettingsError):
        _settings(autoscaling={"targetSessionsPerPod": 0})
    assert _settings(maxSessions=25).max_sessions == 25


@pytest.mark.parametrize(("grace", "prestop", "drain"), [(None, 5, 290), (900, 5, 890), (10, 4, 1)])
def test_termination_grace_from_the_spec_sets_prestop_and_drain(
    grace: int | None, prestop: int, drain: int
) -> None:
    settings = _settings(**({} if grace is None else {"terminationGracePeriodSeconds": grace}))
    pod = render_deployment(AGENT, settings, OperatorConfig())["spec"]["template"]["spec"]
    expected_grace = 300 if grace is None else grace
    assert pod["terminationGracePeriodSeconds"] == expected_grace
    bridge = pod["containers"][0]
    assert bridge["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(prestop)]
    args = bridge["args"]
    assert (
        args[args.index("--drain-timeout-s") + 1]
        == str(drain)
        == str(drain_timeout_s(expected_grace, OperatorConfig()))
    )
    assert prestop + drain + 5 <= expected_grace  # the drain ends before the kubelet's SIGKILL


def test_network_policy_admits_only_the_ingress_to_grpc_and_monitoring_to_metrics() -> None:
    cfg = OperatorConfig(
        network_policy=True,
        ingress_namespace="edge",
        ingress_pod_labels={"app.kubernetes.io/name": "rtvoice-ingress"},
        monitoring_namespace="monitoring",
    )
    children = render_children(AGENT, _settings(), cfg)
    assert _kinds(children) == ["ConfigMap", "Service", "Service", "NetworkPolicy", "Deployment"]
    policy = render_network_policy(AGENT, cfg)
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == render_service(AGENT)["spec"]["selector"]
    assert spec["policyTypes"] == ["Ingress"]  # egress stays open: provider, recorder, tools
    grpc, metrics = spec["ingress"]
    assert grpc == {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "rtvoice-ingress"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": "grpc"}],
    }
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    open_metrics = render_network_policy(AGENT, OperatorConfig(network_policy=True))["spec"]["ingress"][1]
    assert open_metrics == {"ports": [{"protocol": "TCP", "port": "metrics"}]}  # no `from`: any namespace
    ports = {p["name"] for p in children[-1]["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"grpc", "metrics"}  # the policy's named ports exist on the pod
    kubernetes_validate.validate(policy, "1.30.0", strict=True)


def test_internal_token_and_metrics_reach_the_bridge() -> None:
    cfg = OperatorConfig(internal_token_secret="rtvoice-internal", metrics_port=9100)
    dep = render_deployment(AGENT, _settings(), cfg)
    template = dep["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    assert template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    bridge = template["spec"]["containers"][0]
    args = bridge["args"]
    assert args[args.index("--internal-token-file") + 1] == "/etc/rtvoice/internal/token"
    assert args[args.index("--metrics-port") + 1] == "9100"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in bridge["ports"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["internal-token"]["secret"] == {
        "secretName": "rtvoice-internal",
        "items": [{"key": "token", "path": "token"}],
    }
    mounts = {m["name"]: m for m in bridge["volumeMounts"]}
    assert mounts["internal-token"] == {
        "name": "internal-token",
        "mountPath": "/etc/rtvoice/internal",
        "readOnly": True,
    }


def test_new_operator_settings_from_env_and_errors() -> None:
    env = {
        "RTVOICE_CLUSTER_DOMAIN": "corp.internal",
        "RTVOICE_AUTOSCALER": "keda",
        "RTVOICE_KEDA_PROMETHEUS_ADDRESS": "http://prom:9090",
        "RTVOICE_METRICS_PORT": "9100",
        "RTVOICE_INTERNAL_TOKEN_SECRET": "tok",
        "RTVOICE_NETWORK_POLICY": "true",
        "RTVOICE_INGRESS_NAMESPACE": "edge",
        "RTVOICE_INGRESS_POD_LABELS": '{"app": "in"}',
        "RTVOICE_MONITORING_NAMESPACE": "mon",
    }
    cfg = OperatorConfig.from_env(env)
    assert (cfg.cluster_domain, cfg.autoscaler, cfg.keda_prometheus_address) == (
        "corp.internal",
        "keda",
        "http://prom:9090",
    )
    assert (cfg.metrics_port, cfg.internal_token_secret, cfg.network_policy) == (9100, "tok", True)
    assert (cfg.ingress_namespace, cfg.ingress_pod_labels, cfg.monitoring_namespace) == (
        "edge",
        {"app": "in"},
        "mon",
    )
    for bad, message in (
        ({"RTVOICE_AUTOSCALER": "keda"}, "RTVOICE_KEDA_PROMETHEUS_ADDRESS"),
        ({"RTVOICE_AUTOSCALER": "vpa"}, "expected hpa or keda"),
        ({"RTVOICE_CLUSTER_DOMAIN": "Bad_Domain"}, "cluster domain"),
        ({"RTVOICE_NETWORK_POLICY": "yes please"}, "expected true or false"),
        ({"RTVOICE_INGRESS_POD_LABELS": "[1]"}, "label names"),
        ({"RTVOICE_METRICS_PORT": "0"}, "metrics port"),
    ):
        with pytest.raises(OperatorConfigError, match=message):
            OperatorConfig.from_env(bad)


def test_scaling_changes_do_not_roll_the_bridge_pods() -> None:
    def template_hash(**extra: Any) -> str:
        annotations = render_deployment(AGENT, _settings(**extra), OperatorConfig())["spec"]["template"][
            "metadata"
        ]
        return str(annotations["annotations"][SETTINGS_HASH_ANNOTATION])

    base = template_hash(replicas=2)
    assert template_hash(replicas=5) == base
    assert (
        template_hash(autoscaling=SCALING)
        == template_hash(autoscaling={**SCALING, "maxReplicas": 30})
        == base
    )
    assert template_hash(maxSessions=5) != base  # the bridge enforces it: a new agent file, a rollout
    text = render_children(AGENT, _settings(replicas=4, autoscaling=SCALING), OperatorConfig())[0]["data"][
        "agent.yaml"
    ]
    assert "replicas" not in text.lower() and "autoscaling" not in text
