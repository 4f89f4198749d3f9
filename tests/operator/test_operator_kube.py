"""Against a real kube-apiserver + etcd (no controller-manager, no kubelet): the CRD's validation, and the
operator under ``kopf.testing.KopfRunner``, running as the chart's own ServiceAccount and RBAC."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from rtvoice.core.settings import SettingsError, parse_settings
from rtvoice_operator import SETTINGS_HASH_ANNOTATION
from tests.support.kube import KubeEnv, eventually, object_path, render_chart

# The apiserver is prebuilt by `make test-tools`; the session fixture only starts it (~4 s).
pytestmark = pytest.mark.kube

VA = "/apis/rtvoice.io/v1alpha1"
OPERATOR_NS = "rtvoice-system"
SECRET_REF = {"secretRef": {"name": "openai-key", "key": "apiKey"}}


def agents(ns: str, name: str = "") -> str:
    return f"{VA}/namespaces/{ns}/voiceagents" + (f"/{name}" if name else "")


def deployment_path(ns: str, agent: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/rtvoice-bridge-{agent}"


def core_path(ns: str, plural: str, agent: str) -> str:
    return f"/api/v1/namespaces/{ns}/{plural}/rtvoice-bridge-{agent}"


def voice_agent(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rtvoice.io/v1alpha1",
        "kind": "VoiceAgent",
        "metadata": {"name": name},
        "spec": spec,
    }


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def test_crd_is_served_with_printer_columns(kube_env: KubeEnv) -> None:
    kube = kube_env.kube
    kube.create_namespace("t-columns")
    spec = {"provider": "openai", "voice": "cedar", "model": "gpt-realtime", "credentials": SECRET_REF}
    assert kube.create(agents("t-columns"), voice_agent("columns", spec)).status_code == 201
    table = kube.request(
        "GET", agents("t-columns"), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    ).json()
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Provider", "Model", "Voice", "Ready", "Age"]
    assert table["rows"][0]["cells"][:4] == ["columns", "openai", "gpt-realtime", "cedar"]
    short = kube.request("GET", f"{VA}").json()
    (resource,) = [r for r in short["resources"] if r["name"] == "voiceagents"]
    assert resource["shortNames"] == ["va"] and resource["namespaced"] is True


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"provider": "azure"}, "spec.provider", "Unsupported value"),
        ({"turnDetection": {"threshold": 1.5}}, "spec.turnDetection.threshold", "less than or equal to 1"),
        ({"replicas": -1}, "spec.replicas", "greater than or equal to 0"),
        ({"tools": [{"name": "lookup"}]}, "spec.tools.endpoint", "Required value"),
        ({"tools": [{"name": "bad name!", "endpoint": "http://x"}]}, "spec.tools.name", "should match"),
        ({"credentials": {"secretRef": {"key": "k"}}}, "spec.credentials.secretRef.name", "Required value"),
        ({"audio": {"input": "mp3"}}, "spec.audio.input", "Unsupported value"),
        ({"instructions": 42}, "spec.instructions", "must be of type string"),
    ],
)
def test_api_server_rejects_malformed_agents(
    kube_env: KubeEnv, spec: dict[str, Any], field: str, message: str
) -> None:
    kube_env.kube.create_namespace("t-reject")
    response = kube_env.kube.create(agents("t-reject"), voice_agent("bad", spec), dry_run=True)
    assert response.status_code == 422, response.text
    text = response.json()["message"]
    assert field in text and message in text, text
    with pytest.raises(SettingsError):  # the local `rtvoice up -f` path rejects it too: one schema
        parse_settings(spec)


def test_api_server_requires_spec_and_accepts_a_full_agent(kube_env: KubeEnv) -> None:
    kube = kube_env.kube
    kube.create_namespace("t-reject")
    missing = kube.create(agents("t-reject"), {**voice_agent("nospec", {}), "spec": None}, dry_run=True)
    assert missing.status_code == 422 and "spec: Required value" in missing.json()["message"]
    full: dict[str, Any] = {
        "provider": "gemini",
        "voice": "Kore",
        "temperature": 0.9,
        "turnDetection": {
            "type": "server_vad",
            "threshold": 0.6,
            "prefixPaddingMs": 200,
            "silenceDurationMs": 400,
        },
        "audio": {"input": "g711_mulaw", "output": "pcm16_24k"},
        "providerParamOverrides": {"generationConfig": {"topP": 0.9, "nested": {"free": [1, 2]}}},
        "tools": [
            {
                "name": "weather",
                "endpoint": "https://tools/w",
                "parameters": {"type": "object", "x": {"y": 1}},
            }
        ],
        "credentials": SECRET_REF,
        "replicas": 2,
    }
    stored = kube.create(agents("t-reject"), voice_agent("full", full), dry_run=True)
    assert stored.status_code == 201, stored.text
    assert stored.json()["spec"] == full  # free objects kept (x-kubernetes-preserve-unknown-fields)
    assert (
        parse_settings(stored.json()["spec"]).to_public_dict()["tools"][0]["parameters"]
        == full["tools"][0]["parameters"]
    )


@pytest.fixture(scope="module")
def operator(
    kube_env: KubeEnv, helmlite: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KopfRunner]:
    """The operator (kopf, in a thread) authenticated as the chart's ServiceAccount, bound to the
    chart's ClusterRole: the test fails if the chart's least-privilege RBAC is not enough."""
    kube = kube_env.kube
    kube.create_namespace(OPERATOR_NS)
    for doc in render_chart(helmlite, namespace=OPERATOR_NS):
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            kube.apply(object_path(doc), doc)
    sa_config = kube.service_account_kubeconfig(
        OPERATOR_NS, "rtvoice-operator", tmp_path_factory.mktemp("sa") / "kubeconfig"
    )
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "RTVOICE_BRIDGE_IMAGE", "RTVOICE_RECORDER_ADDRESS")}
    os.environ.update(
        KUBECONFIG=str(sa_config),
        RTVOICE_BRIDGE_IMAGE="rtvoice:test",
        RTVOICE_RECORDER_ADDRESS="rtvoice-recorder.rtvoice-system.svc.cluster.local:50052",
    )
    try:
        args = ["run", "--standalone", "--all-namespaces", "-m", "rtvoice_operator.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield runner
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert runner.exit_code == 0, runner.output
    assert "Forbidden" not in runner.output and " 403" not in runner.output, runner.output


def _wait_status(
    kube_env: KubeEnv, ns: str, name: str, generation: int, ctype: str, status: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = kube_env.kube.get(agents(ns, name))
        cond = conditions(obj).get(ctype)
        observed = ((obj or {}).get("status") or {}).get("observedGeneration")
        ok = observed == generation and cond and cond["status"] == status
        return obj if ok else None

    return eventually(check, 30, f"{ns}/{name} {ctype}={status} at generation {generation}")


def test_operator_creates_children_and_follows_spec_and_readiness(
    kube_env: KubeEnv, operator: KopfRunner
) -> None:
    kube, ns = kube_env.kube, "t-flow"
    kube.create_namespace(ns)
    spec = {"provider": "openai", "voice": "marin", "instructions": "Be brief.", "credentials": SECRET_REF}
    created = kube.create(agents(ns), voice_agent("support", spec))
    assert created.status_code == 201, created.text
    uid = created.json()["metadata"]["uid"]

    dep = eventually(lambda: kube.get(deployment_path(ns, "support")), 30, "the bridge Deployment")
    cm = kube.get(core_path(ns, "configmaps", "support"))
    svc = kube.get(core_path(ns, "services", "support"))
    assert cm and svc
    for child in (dep, cm, svc):
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "VoiceAgent",
            "support",
            uid,
            True,
        )
        managers = {m["manager"] for m in child["metadata"]["managedFields"] if m["operation"] == "Apply"}
        assert managers == {"rtvoice-operator"}
    assert "Be brief." in cm["data"]["agent.yaml"]
    assert svc["spec"]["ports"][0]["port"] == 50051
    headless = kube.get(core_path(ns, "services", "support") + "-headless") or {}
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["selector"] == svc["spec"]["selector"]
    (bridge,) = dep["spec"]["template"]["spec"]["containers"]
    assert bridge["image"] == "rtvoice:test"
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-key"]["secret"]["secretName"] == "openai-key"  # a file, not an env variable

    agent = _wait_status(kube_env, ns, "support", 1, "ConfigValid", "True")
    assert conditions(agent)["Ready"]["status"] == "False"  # no kubelet: no pod ever becomes ready
    assert conditions(agent)["Ready"]["observedGeneration"] == 1
    assert conditions(agent)["Reconciling"]["status"] == "True"  # kstatus: in progress, not Current
    assert agent["status"]["bridgeAddress"] == (
        f"dns:///rtvoice-bridge-support-headless.{ns}.svc.cluster.local:50051"
    )

    # kopf's bookkeeping lives in status (the operator may only patch status), never in annotations.
    def with_kopf_status() -> dict[str, Any] | None:
        obj = kube.get(agents(ns, "support")) or {}
        return obj if "kopf" in obj.get("status", {}) else None

    agent = eventually(with_kopf_status, 10, "kopf's status field")
    assert not any(k.startswith("kopf") for k in agent["metadata"].get("annotations") or {})
    assert agent["spec"] == spec  # the operator never writes spec

    # No kubelet or Deployment controller runs here: simulate one by writing the Deployment's status.
    dep = kube.get(deployment_path(ns, "support")) or {}
    kube.merge_patch(
        deployment_path(ns, "support") + "/status",
        {"status": {"observedGeneration": dep["metadata"]["generation"], "replicas": 1, "updatedReplicas": 1,
                    "readyReplicas": 1, "availableReplicas": 1}},
    )  # fmt: skip
    agent = _wait_status(kube_env, ns, "support", 1, "Ready", "True")
    assert conditions(agent)["Progressing"]["reason"] == "RolloutComplete"
    assert conditions(agent)["Reconciling"]["status"] == "False" == conditions(agent)["Stalled"]["status"]

    old_hash = dep["spec"]["template"]["metadata"]["annotations"][SETTINGS_HASH_ANNOTATION]
    kube.merge_patch(agents(ns, "support"), {"spec": {"instructions": "Answer in French."}})

    def rolled() -> dict[str, Any] | None:
        d = kube.get(deployment_path(ns, "support")) or {}
        new = d.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
        return d if new.get(SETTINGS_HASH_ANNOTATION) not in (None, old_hash) else None

    eventually(rolled, 30, "a new settings hash on the pod template")
    assert (
        "Answer in French." in (kube.get(core_path(ns, "configmaps", "support")) or {})["data"]["agent.yaml"]
    )
    agent = _wait_status(
        kube_env, ns, "support", 2, "Progressing", "True"
    )  # the new template is not rolled out
    assert conditions(agent)["ConfigValid"]["observedGeneration"] == 2


def test_operator_reports_settings_only_it_can_judge(kube_env: KubeEnv, operator: KopfRunner) -> None:
    kube, ns = kube_env.kube, "t-invalid"
    kube.create_namespace(ns)
    bad = {"provider": "openai", "voice": "Puck", "credentials": SECRET_REF}
    assert kube.create(agents(ns), voice_agent("wrongvoice", bad)).status_code == 201
    agent = _wait_status(kube_env, ns, "wrongvoice", 1, "ConfigValid", "False")
    cond = conditions(agent)["ConfigValid"]
    assert cond["reason"] == "VoiceNotOffered" and "Puck" in cond["message"]
    assert conditions(agent)["Ready"]["reason"] == "InvalidSettings"
    # kstatus (Argo CD, Flux) reads Stalled=True as Failed instead of Current.
    assert (conditions(agent)["Stalled"]["status"], conditions(agent)["Stalled"]["reason"]) == (
        "True",
        "InvalidSettings",
    )
    assert conditions(agent)["Reconciling"]["status"] == "False"
    assert kube.get(deployment_path(ns, "wrongvoice")) is None
    assert kube.get(core_path(ns, "configmaps", "wrongvoice")) is None

    good = {"provider": "gemini", "voice": "Kore", "credentials": SECRET_REF}
    assert kube.create(agents(ns), voice_agent("turns", good)).status_code == 201
    _wait_status(kube_env, ns, "turns", 1, "ConfigValid", "True")
    children = (
        deployment_path(ns, "turns"),
        core_path(ns, "configmaps", "turns"),
        core_path(ns, "services", "turns"),
    )
    before = {p: (kube.get(p) or {})["metadata"]["resourceVersion"] for p in children}
    kube.merge_patch(
        agents(ns, "turns"),
        {"spec": {"turnDetection": {"type": "semantic_vad"}, "tools": [
            {"name": "t", "endpoint": "http://a"}, {"name": "t", "endpoint": "http://b"}]}},
    )  # fmt: skip
    agent = _wait_status(kube_env, ns, "turns", 2, "ConfigValid", "False")
    cond = conditions(agent)["ConfigValid"]
    assert cond["reason"] == "UnsupportedTurnDetection" and "duplicate" in cond["message"]
    after = {p: (kube.get(p) or {})["metadata"]["resourceVersion"] for p in before}
    assert after == before  # children left untouched


def test_operator_corrects_drift_in_children(kube_env: KubeEnv, operator: KopfRunner) -> None:
    kube, ns = kube_env.kube, "t-drift"
    kube.create_namespace(ns)
    assert (
        kube.create(agents(ns), voice_agent("steady", {"provider": "local", "replicas": 2})).status_code
        == 201
    )
    _wait_status(kube_env, ns, "steady", 1, "ConfigValid", "True")
    desired = kube.get(deployment_path(ns, "steady")) or {}
    want = copy.deepcopy(desired["spec"]["template"]["spec"]["containers"])
    # Someone else edits the Deployment: other replicas, the bridge container replaced by another image.
    kube.merge_patch(
        deployment_path(ns, "steady"),
        {
            "spec": {
                "replicas": 7,
                "template": {"spec": {"containers": [{"name": "bridge", "image": "evil:1"}]}},
            }
        },
        manager="kubectl-edit",
    )

    def restored() -> bool:
        d = kube.get(deployment_path(ns, "steady")) or {}
        return d["spec"]["replicas"] == 2 and d["spec"]["template"]["spec"]["containers"] == want

    eventually(restored, 30, "the operator to revert the Deployment")
    response = kube.request("DELETE", core_path(ns, "services", "steady"))
    assert response.status_code == 200
    eventually(lambda: kube.get(core_path(ns, "services", "steady")), 30, "the deleted Service to come back")


def test_an_apply_the_server_refuses_is_stalled(kube_env: KubeEnv, operator: KopfRunner) -> None:
    """This v1.20 control plane serves no autoscaling/v2 (added in 1.23): the HPA of an autoscaled agent
    cannot be applied, and the agent says so as Stalled=True / ApplyFailed until the cluster can."""
    kube, ns = kube_env.kube, "t-stalled"
    kube.create_namespace(ns)
    spec = {"provider": "local", "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}
    assert kube.create(agents(ns), voice_agent("scaled", spec)).status_code == 201
    agent = _wait_status(kube_env, ns, "scaled", 1, "Stalled", "True")
    stalled = conditions(agent)["Stalled"]
    assert stalled["reason"] == "ApplyFailed" and "404" in stalled["message"], stalled
    assert conditions(agent)["Reconciling"]["status"] == "False"
    dep = kube.get(deployment_path(ns, "scaled")) or {}
    assert dep["metadata"]["name"] == "rtvoice-bridge-scaled"  # children before the HPA were applied
    managed = [m for m in dep["metadata"]["managedFields"] if m["manager"] == "rtvoice-operator"]
    assert managed and all("f:replicas" not in str(m.get("fieldsV1", {}).get("f:spec", {})) for m in managed)
