"""The chart's scale-out parts (rendered by helmlite): recorder StatefulSet, NetworkPolicies, internal-auth
Secret files, metrics scraping and monitors, autoscaler RBAC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rtvoice.core.metrics import CHART_METRICS_PORT
from rtvoice_operator.render import child_labels
from tests.support.kube import render_chart

VALUES: dict[str, Any] = {
    "operator": {
        "watchNamespaces": ["voice-a", "voice-b"],
        "autoscaler": "keda",
        "kedaPrometheusAddress": "http://prom.monitoring.svc:9090",
    },
    "internalAuth": {"token": "t0ken"},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "recorder": {"replicas": 3, "persistence": {"storageClassName": "fast", "size": "50Gi"}},
}


def _render(helmlite: Path, tmp_path: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    if values is None:
        return render_chart(helmlite)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render_chart(helmlite, "-f", str(path))


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = doc["spec"]["template"]["spec"]
    return pod


def test_recorders_are_a_statefulset_with_a_claim_per_pod(helmlite: Path, tmp_path: Path) -> None:
    docs = _render(helmlite, tmp_path, VALUES)
    sts = _one(docs, "StatefulSet", "rtvoice-recorder")
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["serviceName"] == "rtvoice-recorder-headless"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    mounts = {m["name"]: m["mountPath"] for m in _pod(sts)["containers"][0]["volumeMounts"]}
    assert mounts["data"] == "/var/lib/rtvoice"
    assert "data" not in {v["name"] for v in _pod(sts)["volumes"]}  # the claim template provides it
    headless = _one(docs, "Service", "rtvoice-recorder-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    ephemeral = _one(
        _render(helmlite, tmp_path, {"recorder": {"persistence": {"enabled": False}}}),
        "StatefulSet",
        "rtvoice-recorder",
    )
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    assert {"name": "data", "emptyDir": {"sizeLimit": "10Gi"}} in _pod(ephemeral)["volumes"]


def test_network_policies_admit_only_the_expected_peers(helmlite: Path, tmp_path: Path) -> None:
    docs = _render(helmlite, tmp_path)
    recorder = _one(docs, "NetworkPolicy", "rtvoice-recorder")["spec"]
    grpc, metrics = recorder["ingress"]
    (peer,) = grpc["from"]
    assert peer["namespaceSelector"] == {}  # bridges live in the agents' namespaces
    assert peer["podSelector"]["matchLabels"].items() <= child_labels("any-agent").items()  # the bridge pods
    assert grpc["ports"] == [{"protocol": "TCP", "port": "grpc"}]
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert metrics == {"ports": [{"protocol": "TCP", "port": "metrics"}], "from": monitoring}
    ingress = _one(docs, "NetworkPolicy", "rtvoice-ingress")["spec"]
    assert ingress["ingress"][0] == {"ports": [{"protocol": "TCP", "port": "http"}]}  # callers: anywhere
    assert ingress["ingress"][1]["from"] == monitoring
    operator = _pod(_one(docs, "Deployment", "rtvoice-operator"))["containers"][0]
    env = {e["name"]: e["value"] for e in operator["env"]}
    assert env["RTVOICE_NETWORK_POLICY"] == "true" and env["RTVOICE_MONITORING_NAMESPACE"] == "monitoring"
    off = _render(helmlite, tmp_path, {"networkPolicy": {"enabled": False}})
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]
    off_env = {
        e["name"]: e["value"]
        for e in _pod(_one(off, "Deployment", "rtvoice-operator"))["containers"][0]["env"]
    }
    assert off_env["RTVOICE_NETWORK_POLICY"] == "false"


@pytest.mark.parametrize(
    ("kind", "name"), [("Deployment", "rtvoice-ingress"), ("StatefulSet", "rtvoice-recorder")]
)
def test_services_get_the_internal_token_file_and_a_metrics_port(
    helmlite: Path, tmp_path: Path, kind: str, name: str
) -> None:
    doc = _one(_render(helmlite, tmp_path, VALUES), kind, name)
    annotations = doc["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(CHART_METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    container = _pod(doc)["containers"][0]
    args = container["args"]
    assert args[args.index("--internal-token-file") + 1] == "/etc/rtvoice/internal/token"
    assert args[args.index("--metrics-port") + 1] == str(CHART_METRICS_PORT)  # the services' constant
    assert {"name": "metrics", "containerPort": CHART_METRICS_PORT, "protocol": "TCP"} in container["ports"]
    (volume,) = [v for v in _pod(doc)["volumes"] if v["name"] == "internal-token"]
    assert volume["secret"] == {
        "secretName": "rtvoice-internal",
        "items": [{"key": "token", "path": "token"}],
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "internal-token"]
    assert mount == {"name": "internal-token", "mountPath": "/etc/rtvoice/internal", "readOnly": True}


def test_internal_token_secret_lands_in_every_namespace_that_mounts_it(
    helmlite: Path, tmp_path: Path
) -> None:
    docs = _render(helmlite, tmp_path, VALUES)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert sorted(s["metadata"]["namespace"] for s in secrets) == ["rtvoice", "voice-a", "voice-b"]
    assert all(
        s["stringData"] == {"token": "t0ken"} and s["metadata"]["name"] == "rtvoice-internal" for s in secrets
    )
    assert not [d for d in _render(helmlite, tmp_path) if d["kind"] == "Secret"]  # default: bring your own
    no_auth = _render(helmlite, tmp_path, {"internalAuth": {"enabled": False}})
    ingress = _pod(_one(no_auth, "Deployment", "rtvoice-ingress"))["containers"][0]
    assert "--internal-token-file" not in ingress["args"]
    env = {
        e["name"]: e["value"]
        for e in _pod(_one(no_auth, "Deployment", "rtvoice-operator"))["containers"][0]["env"]
    }
    assert env["RTVOICE_INTERNAL_TOKEN_SECRET"] == ""  # bridges get no token file either


def test_monitors_select_the_metrics_ports(helmlite: Path, tmp_path: Path) -> None:
    docs = _render(helmlite, tmp_path, VALUES)
    monitor = _one(docs, "ServiceMonitor", "rtvoice")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    for name in ("rtvoice-ingress", "rtvoice-recorder"):
        ports = {p["name"] for p in _one(docs, "Service", name)["spec"]["ports"]}
        assert "metrics" in ports
    pods = _one(docs, "PodMonitor", "rtvoice-bridges")["spec"]
    assert pods["namespaceSelector"] == {"matchNames": ["voice-a", "voice-b"]}
    assert pods["selector"]["matchLabels"]["app.kubernetes.io/name"] == "rtvoice-bridge"
    assert not [d for d in _render(helmlite, tmp_path) if d["kind"] in ("ServiceMonitor", "PodMonitor")]


def test_autoscaler_settings_and_rbac_follow_the_mode(helmlite: Path, tmp_path: Path) -> None:
    keda = _render(helmlite, tmp_path, VALUES)
    env = {
        e["name"]: e["value"]
        for e in _pod(_one(keda, "Deployment", "rtvoice-operator"))["containers"][0]["env"]
    }
    assert env["RTVOICE_AUTOSCALER"] == "keda"
    assert env["RTVOICE_KEDA_PROMETHEUS_ADDRESS"] == "http://prom.monitoring.svc:9090"
    for role in [d for d in keda if d["kind"] == "Role"]:
        groups = {g for rule in role["rules"] for g in rule["apiGroups"]}
        assert {"keda.sh", "autoscaling", "networking.k8s.io"} <= groups
    hpa = _render(helmlite, tmp_path)
    (cluster_role,) = [d for d in hpa if d["kind"] == "ClusterRole"]
    groups = {g for rule in cluster_role["rules"] for g in rule["apiGroups"]}
    assert "autoscaling" in groups and "keda.sh" not in groups  # least privilege in hpa mode
    with pytest.raises(RuntimeError, match="kedaPrometheusAddress is required"):
        _render(helmlite, tmp_path, {"operator": {"autoscaler": "keda"}})
