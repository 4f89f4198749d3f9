"""The Helm chart (rendered by helmlite), its values schema, RBAC, Dockerfile and skaffold config."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rtvoice.core.settings import parse_settings
from rtvoice_operator import health
from rtvoice_operator.children import render_children
from rtvoice_operator.config import OperatorConfig
from rtvoice_operator.render import HEALTH_PROBE_COMMAND, AgentRef, render_deployment
from tests.support.kube import CHART, REPO, render_chart

OVERRIDES: dict[str, Any] = {
    "image": {
        "repository": "registry.example/rtvoice",
        "tag": "v2@sha256:" + "a" * 64,
        "pullPolicy": "Always",
    },
    "imagePullSecrets": ["regcred"],
    "operator": {"watchNamespaces": ["voice-a", "voice-b"], "logLevel": "DEBUG"},
    "ingress": {
        "replicas": 3,
        "noAuth": True,
        "allowedOrigins": ["https://app.example.com"],
        "expose": {
            "enabled": True,
            "className": "nginx",
            "host": "voice.example.com",
            "tlsSecretName": "voice-tls",
        },
        "pdb": {"enabled": True, "minAvailable": "50%"},
    },
    "clusterDomain": "corp.internal",
    "internalAuth": {"token": "t0ken"},
    "metrics": {"port": 9100, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "networkPolicy": {"monitoringNamespace": ""},
    "recorder": {
        "replicas": 3,
        "persistence": {"enabled": True, "storageClassName": "fast", "size": "50Gi"},
        "s3": {
            "endpoint": "https://s3.example.com",
            "bucket": "calls",
            "prefix": "prod",
            "credentialsSecret": "s3",
        },
        "mongo": {"uriSecret": {"name": "mongo", "key": "uri"}},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "pdb": {"enabled": False},
    },
}
# The image's entrypoint is `tini -- rtvoice`; containers set only args, args[0] = the subcommand.
CLI_MODULES = {
    "operator": "rtvoice_operator.cli",
    "ingress": "rtvoice.ingress.cli",
    "recorder": "rtvoice.recorder.cli",
    "bridge": "rtvoice.bridge.cli",
    "local-realtime": "rtvoice.localrt.cli",
}


@pytest.fixture(scope="module")
def default_render(helmlite: Path) -> list[dict[str, Any]]:
    return render_chart(helmlite)


@pytest.fixture(scope="module")
def override_render(helmlite: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    values = tmp_path_factory.mktemp("values") / "override.yaml"
    values.write_text(yaml.safe_dump(OVERRIDES))
    return render_chart(helmlite, "-f", str(values), "--set", "ingress.port=9090")


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _bridge_deployment(provider: str) -> dict[str, Any]:
    spec = {"provider": provider, "credentials": {"secretRef": {"name": "k"}}}
    return render_deployment(AgentRef("a", "ns", "uid"), parse_settings(spec), OperatorConfig())


def _containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


@pytest.mark.parametrize("which", ["default", "override"])
def test_every_rendered_object_passes_strict_schema_validation(
    which: str, request: pytest.FixtureRequest
) -> None:
    docs = request.getfixturevalue(f"{which}_render")
    kinds = sorted({d["kind"] for d in docs})
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "PodDisruptionBudget",
    } <= set(kinds)
    assert {"StatefulSet", "NetworkPolicy"} <= set(kinds)
    bridges = [_bridge_deployment("openai"), _bridge_deployment("local")]
    scaled = {"provider": "local", "autoscaling": {"minReplicas": 2}, "terminationGracePeriodSeconds": 900}
    cfg = OperatorConfig(network_policy=True, internal_token_secret="rtvoice-internal")
    children = render_children(AgentRef("a", "ns", "uid"), parse_settings(scaled), cfg)
    assert {c["kind"] for c in children} >= {"HorizontalPodAutoscaler", "NetworkPolicy", "Service"}
    for doc in docs + bridges + children:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # Prometheus Operator custom resources: not in the built-in schemas
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    broken = json.loads(json.dumps(bridges[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):  # the check is strict: unknown fields fail
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def test_default_render_wires_services_together(default_render: list[dict[str, Any]]) -> None:
    deployments = _by_kind(default_render, "Deployment")
    assert set(deployments) == {"rtvoice-operator", "rtvoice-ingress"}
    assert set(_by_kind(default_render, "StatefulSet")) == {"rtvoice-recorder"}
    op = deployments["rtvoice-operator"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in op["containers"][0]["env"]}
    assert env["RTVOICE_RECORDER_ADDRESS"] == "rtvoice-recorder.rtvoice.svc.cluster.local:50052"
    assert json.loads(env["RTVOICE_BRIDGE_RESOURCES"])["limits"] == {"memory": "1Gi"}
    cfg = OperatorConfig.from_env(
        {k: v for k, v in env.items() if v}
    )  # the operator accepts what the chart sets
    assert cfg.bridge_image == "rtvoice:0.1.0"
    assert (cfg.cluster_domain, cfg.autoscaler, cfg.metrics_port) == ("cluster.local", "hpa", 9464)
    assert cfg.network_policy and cfg.internal_token_secret == "rtvoice-internal"
    assert cfg.monitoring_namespace == "monitoring" and cfg.ingress_namespace == "rtvoice"
    ingress_pod = deployments["rtvoice-ingress"]["spec"]["template"]["metadata"]["labels"]
    assert cfg.ingress_pod_labels.items() <= ingress_pod.items()  # the bridges' policy admits the ingress
    assert op["serviceAccountName"] == "rtvoice-operator"
    assert deployments["rtvoice-operator"]["spec"]["strategy"]["type"] == "Recreate"
    services = _by_kind(default_render, "Service")
    assert services["rtvoice-recorder"]["spec"]["ports"][0]["port"] == 50052
    ingress_args = deployments["rtvoice-ingress"]["spec"]["template"]["spec"]["containers"][0]["args"]
    # The chart names only the domain; bridge addresses come from rtvoice.core.addresses (one home).
    assert ingress_args[ingress_args.index("--bridge-cluster-domain") + 1] == "cluster.local"
    assert not any("rtvoice-bridge" in a for a in ingress_args)
    assert set(_by_kind(default_render, "PodDisruptionBudget")) == {"rtvoice-ingress", "rtvoice-recorder"}
    for pdb in _by_kind(default_render, "PodDisruptionBudget").values():
        assert pdb["apiVersion"] == "policy/v1"


def test_override_render(override_render: list[dict[str, Any]]) -> None:
    deployments = _by_kind(override_render, "Deployment")
    images = {c["image"] for c in _containers(override_render)}
    assert images == {"registry.example/rtvoice:v2@sha256:" + "a" * 64}
    ingress = deployments["rtvoice-ingress"]["spec"]["template"]["spec"]
    args = ingress["containers"][0]["args"]
    assert (
        "--no-auth" in args and "--auth-secret-file" not in args and args[args.index("--port") + 1] == "9090"
    )
    assert [v["name"] for v in ingress["volumes"]] == ["tmp", "internal-token"]
    assert args[args.index("--bridge-cluster-domain") + 1] == "corp.internal"
    assert ingress["imagePullSecrets"] == [{"name": "regcred"}]
    (exposed,) = _by_kind(override_render, "Ingress").values()
    assert exposed["spec"]["rules"][0]["host"] == "voice.example.com"
    recorder = _by_kind(override_render, "StatefulSet")["rtvoice-recorder"]["spec"]
    rargs = recorder["template"]["spec"]["containers"][0]["args"]
    assert rargs[rargs.index("--s3-bucket") + 1] == "calls" and "--s3-credentials-dir" in rargs
    assert rargs[rargs.index("--metrics-port") + 1] == "9100"
    renv = recorder["template"]["spec"]["containers"][0]["env"]
    assert renv[0] == {
        "name": "RTVOICE_MONGO_URI",
        "valueFrom": {"secretKeyRef": {"name": "mongo", "key": "uri"}},
    }
    assert renv[1] == {"name": "TZ", "value": "UTC"}
    assert set(_by_kind(override_render, "PodDisruptionBudget")) == {"rtvoice-ingress"}
    op_args = deployments["rtvoice-operator"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert op_args[-4:] == ["--namespace", "voice-a", "--namespace", "voice-b"]
    roles = [d for d in override_render if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["voice-a", "voice-b"]
    (cluster_role,) = _by_kind(override_render, "ClusterRole").values()
    assert [r["resources"] for r in cluster_role["rules"]] == [["customresourcedefinitions"]]


@pytest.mark.parametrize("which", ["default", "override"])
def test_operator_rbac_is_least_privilege(which: str, request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(f"{which}_render")
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"] and "*" not in rule["resources"], rule
            assert "*" not in rule["apiGroups"] and "*" not in rule["verbs"], rule
            assert not {"deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            if "delete" in rule["verbs"]:  # only autoscalers an agent no longer asks for
                assert set(rule["resources"]) <= {"horizontalpodautoscalers", "scaledobjects"}, rule
            if "voiceagents" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule  # spec is never written
            if "voiceagents/status" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "patch"}, rule


def test_values_validate_against_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(values, schema)
    merged = json.loads(json.dumps(values))
    for section, extra in OVERRIDES.items():
        merged[section] = {**merged[section], **extra} if isinstance(extra, dict) else extra
    jsonschema.validate(merged, schema)
    for bad in (
        {"operator": {**values["operator"], "replicas": 2}},
        {"typo": 1},
        {"image": {**values["image"], "pullPolicy": "Sometimes"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**values, **bad}, schema)


def _parse_service_args(args: list[str]) -> argparse.Namespace:
    module = importlib.import_module(CLI_MODULES[args[0]])  # a broken import fails the test
    parser = argparse.ArgumentParser(prog="rtvoice")
    module.register(parser.add_subparsers(dest="command"))
    try:
        return parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"`rtvoice {' '.join(args)}` is rejected by the rtvoice CLI")


@pytest.mark.parametrize("service", sorted(CLI_MODULES))
def test_container_args_are_accepted_by_the_cli(
    service: str, default_render: list[dict[str, Any]], override_render: list[dict[str, Any]]
) -> None:
    containers = _containers(default_render + override_render) + _containers([_bridge_deployment("local")])
    found = [c["args"] for c in containers if c["args"][0] == service]
    assert found, f"no container runs `rtvoice {service}`"
    for args in found:
        _parse_service_args(args)
    for c in containers:
        assert "command" not in c  # keep the image's entrypoint (tini as PID 1)


def test_health_probe_command_parses() -> None:
    probe = _bridge_deployment("openai")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"][
        "exec"
    ]["command"]
    assert tuple(probe[:3]) == HEALTH_PROBE_COMMAND[:3] == ("python", "-m", "rtvoice_operator.health")
    parser = argparse.ArgumentParser()
    health.add_arguments(parser)
    assert parser.parse_args(probe[3:]).grpc == "127.0.0.1:50051"


def test_dockerfile_builds_one_image_with_the_rtvoice_entrypoint() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", text, re.M)
    assert entrypoint and json.loads(entrypoint.group(1)) == ["tini", "--", "rtvoice"]
    assert "pip install ." in text and "USER 10001:10001" in text
    for path in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for part in path.split():
            assert (REPO / part).exists(), f"Dockerfile copies missing {part}"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rtvoice"] == "rtvoice.cli:main"
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    for needed in ("!pyproject.toml", "!README.md", "!services/", "!operator/"):
        assert needed in ignore
    pod = _bridge_deployment("openai")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user


def test_skaffold_builds_the_image_and_deploys_the_chart() -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4beta") and config["kind"] == "Config"
    (artifact,) = config["build"]["artifacts"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert artifact["image"] == values["image"]["repository"]
    assert (REPO / artifact["docker"]["dockerfile"]).is_file()
    (release,) = config["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
    for key, template in release["setValueTemplates"].items():
        node: Any = values
        for part in key.split("."):
            node = node[part]  # every templated key exists in values.yaml
        assert "IMAGE_" not in template or artifact["image"] in template
