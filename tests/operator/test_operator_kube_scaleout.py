"""Scale-out on a real kube-apiserver v1.20 + etcd (no controller-manager, no kubelet).

- ``rtvoice operator --namespace NS`` (exact names, the chart's per-namespace Roles, no namespace list
  permission) reconciles within seconds of start, and announces readiness only once it watches;
- KEDA mode: the ScaledObject is applied and removed again when the agent drops ``autoscaling``;
- every built-in object of the chart and of the operator passes the server's validation (dry run), and
  nothing is silently pruned. What v1.20 cannot check: ``autoscaling/v2`` (sent as v2beta2, the same
  shape), ``policy/v1`` PodDisruptionBudgets (sent as v1beta1), Prometheus Operator monitors (no CRD).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtvoice.core.service import READY_PREFIX
from rtvoice.core.settings import parse_settings
from rtvoice_operator.children import render_children
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.render import AgentRef
from rtvoice_operator.render_scale import render_scaled_object
from tests.support.kube import KubeEnv, eventually, missing_fields, object_path, render_chart

pytestmark = pytest.mark.kube

OPERATOR_NS = "rtvoice-scale"
WATCHED = "t-watched"
VA = "/apis/rtvoice.io/v1alpha1"
PROMETHEUS = "http://prometheus.monitoring.svc:9090"
SCALING = {"minReplicas": 2, "maxReplicas": 6, "targetSessionsPerPod": 8}
# Where v1.20 serves the same shape under an older version.
OLDER_VERSION = {"autoscaling/v2": "autoscaling/v2beta2", "policy/v1": "policy/v1beta1"}
NOT_BUILT_IN = ("monitoring.coreos.com/",)


def _scaled_object_crd() -> dict[str, Any]:
    """A stand-in for KEDA's CRD (same group/version/names; spec kept as sent): it lets the operator's
    RBAC, apply and delete of ScaledObjects run against a real server. The shape itself is checked
    against KEDA's schema in test_operator_scaleout.py."""
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "scaledobjects.keda.sh"},
        "spec": {
            "group": "keda.sh",
            "scope": "Namespaced",
            "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
            "versions": [
                {"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }


def _agent_path(name: str = "") -> str:
    return f"{VA}/namespaces/{WATCHED}/voiceagents" + (f"/{name}" if name else "")


def _install_rbac(kube_env: KubeEnv, helmlite: Path, tmp_path: Path) -> Path:
    """The chart's operator RBAC for watchNamespaces=[WATCHED] and autoscaler keda; returns the
    ServiceAccount's kubeconfig."""
    kube = kube_env.kube
    for ns in (OPERATOR_NS, WATCHED):
        kube.create_namespace(ns)
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "operator": {
                    "watchNamespaces": [WATCHED],
                    "autoscaler": "keda",
                    "kedaPrometheusAddress": PROMETHEUS,
                }
            }
        )
    )
    rbac = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    docs = [d for d in render_chart(helmlite, "-f", str(values), namespace=OPERATOR_NS) if d["kind"] in rbac]
    assert {d["kind"] for d in docs} == set(rbac)
    for doc in docs:
        kube.apply(object_path(doc), doc)
    return kube.service_account_kubeconfig(OPERATOR_NS, "rtvoice-operator", tmp_path / "sa-kubeconfig")


class OperatorProcess:
    """``rtvoice operator`` as a subprocess; its output lines are collected by a reader thread."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtvoice", "operator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.output: list[str] = []
        self.ready: tuple[float, dict[str, Any]] | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))

    def wait_ready(self, timeout_s: float) -> tuple[float, dict[str, Any]]:
        """(seconds from spawn, payload) of the RTVOICE_READY line (remembered once seen)."""
        if self.ready is not None:
            return self.ready
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                at, line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.output.append(line)
            if line.startswith(READY_PREFIX):
                self.ready = (at - self.started, json.loads(line[len(READY_PREFIX) :]))
                return self.ready
        raise AssertionError(f"no {READY_PREFIX} line within {timeout_s} s:\n{''.join(self.output)}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        while not self.lines.empty():
            self.output.append(self.lines.get()[1])
        return code


@pytest.fixture(scope="module")
def keda_operator(
    kube_env: KubeEnv, helmlite: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, dict[str, Any]]]:
    """An autoscaled agent created first, then the operator started in keda mode for WATCHED only."""
    kube = kube_env.kube
    crd = _scaled_object_crd()
    kube.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}", crd)
    eventually(lambda: kube.request("GET", "/apis/keda.sh/v1alpha1").status_code == 200, 30, "the KEDA CRD")
    sa_config = _install_rbac(kube_env, helmlite, tmp_path_factory.mktemp("keda"))
    spec = {"provider": "local", "autoscaling": SCALING, "terminationGracePeriodSeconds": 120}
    created = kube.create(
        _agent_path(),
        {
            "apiVersion": "rtvoice.io/v1alpha1",
            "kind": "VoiceAgent",
            "metadata": {"name": "fast"},
            "spec": spec,
        },
    )
    assert created.status_code == 201, created.text
    env = {
        "KUBECONFIG": str(sa_config),
        "RTVOICE_BRIDGE_IMAGE": "rtvoice:test",
        "RTVOICE_AUTOSCALER": "keda",
        "RTVOICE_KEDA_PROMETHEUS_ADDRESS": PROMETHEUS,
        "RTVOICE_NETWORK_POLICY": "true",
        "RTVOICE_INGRESS_NAMESPACE": OPERATOR_NS,
        "RTVOICE_INTERNAL_TOKEN_SECRET": "rtvoice-internal",
        "RTVOICE_CLUSTER_DOMAIN": "corp.internal",
    }
    process = OperatorProcess(env, "--namespace", WATCHED)
    try:
        yield process, created.json()
    finally:
        code = process.stop()
    log = "".join(process.output)
    assert code == 0, log
    assert "Forbidden" not in log and " 403" not in log, log


def test_watched_namespace_reconciles_within_seconds_of_start(
    keda_operator: tuple[OperatorProcess, Any], kube_env: KubeEnv
) -> None:
    process, _ = keda_operator
    ready_s, payload = process.wait_ready(60)
    assert payload["service"] == "operator" and payload["namespaces"] == [WATCHED]

    def reconciled() -> dict[str, Any] | None:
        obj = kube_env.kube.get(_agent_path("fast")) or {}
        return obj if (obj.get("status") or {}).get("observedGeneration") == 1 else None

    agent = eventually(reconciled, 5, "the first reconcile within 5 s of RTVOICE_READY")
    first_s = time.monotonic() - process.started
    print(f"\noperator start: RTVOICE_READY after {ready_s:.1f} s, first reconcile after {first_s:.1f} s")
    # Without exact-namespace mode kopf retries a forbidden namespace list for ~54 s before it watches
    # (and READY now waits for that); a healthy start is import time plus ~1 s.
    assert first_s < 20, f"first reconcile {first_s:.1f} s after start: kopf waited for namespace listing"
    assert (
        agent["status"]["bridgeAddress"]
        == f"dns:///rtvoice-bridge-fast-headless.{WATCHED}.svc.corp.internal:50051"
    )


def test_keda_mode_applies_the_scaled_object_and_removes_it_with_autoscaling(
    keda_operator: tuple[OperatorProcess, Any], kube_env: KubeEnv
) -> None:
    process, created = keda_operator
    process.wait_ready(60)
    kube = kube_env.kube
    path = f"/apis/keda.sh/v1alpha1/namespaces/{WATCHED}/scaledobjects/rtvoice-bridge-fast"
    stored = eventually(lambda: kube.get(path), 30, "the ScaledObject")
    agent = AgentRef.from_body(created)
    cfg = OperatorConfig(autoscaler="keda", keda_prometheus_address=PROMETHEUS)
    expected = render_scaled_object(agent, parse_settings(created["spec"]).autoscaling, cfg)  # type: ignore[arg-type]
    assert stored["spec"] == expected["spec"]
    assert stored["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    base = f"/apis/networking.k8s.io/v1/namespaces/{WATCHED}/networkpolicies/rtvoice-bridge-fast"
    policy = eventually(lambda: kube.get(base), 30, "the bridge NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": OPERATOR_NS
    }
    dep = kube.get(f"/apis/apps/v1/namespaces/{WATCHED}/deployments/rtvoice-bridge-fast") or {}
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120
    assert {v["name"] for v in pod["volumes"]} >= {"internal-token", "agent"}

    kube.merge_patch(_agent_path("fast"), {"spec": {"autoscaling": None, "replicas": 2}})
    eventually(lambda: kube.get(path) is None, 30, "the ScaledObject to be deleted")

    def replicas_back() -> bool:
        d = kube.get(f"/apis/apps/v1/namespaces/{WATCHED}/deployments/rtvoice-bridge-fast") or {}
        return d.get("spec", {}).get("replicas") == 2

    eventually(replicas_back, 30, "spec.replicas applied again without an autoscaler")

    # Switching autoscaling on again must not reset replicas to 1 (server-side apply releasing the field).
    kube.merge_patch(_agent_path("fast"), {"spec": {"autoscaling": SCALING}})
    eventually(lambda: kube.get(path), 30, "the ScaledObject again")
    dep = kube.get(f"/apis/apps/v1/namespaces/{WATCHED}/deployments/rtvoice-bridge-fast") or {}
    assert dep["spec"]["replicas"] == 2
    owners = {
        m["manager"] for m in dep["metadata"]["managedFields"] if "f:replicas" in str(m.get("fieldsV1"))
    }
    assert owners == {"rtvoice-operator-replicas-handover"}


def _for_v120(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as this server takes it: older API version of the same shape; a Secret's write-only
    ``stringData`` as the ``data`` it turns into."""
    older = OLDER_VERSION.get(doc["apiVersion"])
    doc = {**doc, "apiVersion": older} if older else dict(doc)
    if doc["kind"] == "Secret" and "stringData" in doc:
        text = doc.pop("stringData")
        doc["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in text.items()}
    return doc


def _dry_run_create(kube_env: KubeEnv, doc: dict[str, Any]) -> None:
    sent = _for_v120(doc)
    response = kube_env.kube.create(object_path(sent, collection=True), sent, dry_run=True)
    assert response.status_code == 201, f"{doc['kind']} {doc['metadata']['name']}: {response.text}"
    pruned = missing_fields(sent, response.json())
    assert not pruned, f"{doc['kind']} {doc['metadata']['name']}: the server dropped {pruned}"


@pytest.mark.parametrize("which", ["default", "override"])
def test_chart_objects_pass_the_api_servers_validation(
    which: str, kube_env: KubeEnv, helmlite: Path, tmp_path: Path
) -> None:
    args: list[str] = []
    if which == "override":
        values = {
            "operator": {"watchNamespaces": ["voice-a"]},
            "internalAuth": {"token": "t0ken"},
            "metrics": {"serviceMonitor": {"enabled": True}},
            "recorder": {"replicas": 3, "persistence": {"storageClassName": "fast", "size": "50Gi"}},
        }
        (tmp_path / "v.yaml").write_text(yaml.safe_dump(values))
        args = ["-f", str(tmp_path / "v.yaml")]
    docs = render_chart(helmlite, *args, namespace="rtvoice-dry", release=f"dry-{which}")
    for ns in ("rtvoice-dry", "voice-a"):
        kube_env.kube.create_namespace(ns)
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "NetworkPolicy", "Service"} <= kinds
    for doc in docs:
        if not doc["apiVersion"].startswith(NOT_BUILT_IN):
            _dry_run_create(kube_env, doc)


def test_operator_children_pass_the_api_servers_validation(kube_env: KubeEnv) -> None:
    kube_env.kube.create_namespace("t-dry")
    agent = AgentRef("dry", "t-dry", "0b7e6c1e-0000-4000-8000-000000000003")
    cfg = OperatorConfig(
        network_policy=True, internal_token_secret="rtvoice-internal", monitoring_namespace="mon"
    )
    specs = [
        {
            "provider": "local",
            "autoscaling": SCALING,
            "terminationGracePeriodSeconds": 600,
            "maxSessions": 20,
        },
        {"provider": "openai", "credentials": {"secretRef": {"name": "k"}}, "replicas": 3},
    ]
    for spec in specs:
        for child in render_children(agent, parse_settings(spec), cfg):
            child = json.loads(json.dumps(child))
            del child["metadata"]["ownerReferences"]  # the owner does not exist (dry run)
            _dry_run_create(kube_env, child)
