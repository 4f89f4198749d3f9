"""Pure render / validate / conditions / config functions of the operator, without a cluster."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from rtvoice.core.addresses import MAX_AGENT_NAME_LENGTH
from rtvoice.core.settings import AgentSettings, load_agent_file, parse_settings
from rtvoice_operator import AGENT_LABEL, MANAGED_BY_LABEL, SETTINGS_HASH_ANNOTATION
from rtvoice_operator.children import render_children
from rtvoice_operator.conditions import build_status, status_changed
from rtvoice_operator.config import OperatorConfig, OperatorConfigError
from rtvoice_operator.render import (
    AgentRef,
    child_name,
    drain_timeout_s,
    render_configmap,
    render_deployment,
)
from rtvoice_operator.render_net import render_service
from rtvoice_operator.validate import semantic_problems

AGENT = AgentRef(name="support", namespace="voice", uid="0b7e6c1e-0000-4000-8000-000000000001")
CFG = OperatorConfig(bridge_image="registry.example/rtvoice:1.2.3", recorder_address="rec.rtvoice.svc:50052")


def _openai(**extra: Any) -> AgentSettings:
    spec = {
        "provider": "openai",
        "voice": "marin",
        "credentials": {"secretRef": {"name": "openai", "key": "k"}},
    }
    return parse_settings({**spec, **extra})


def _containers(dep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


def test_children_names_labels_and_owner() -> None:
    children = render_children(AGENT, _openai(), CFG)
    assert [c["kind"] for c in children] == ["ConfigMap", "Service", "Service", "Deployment"]
    names = [c["metadata"]["name"] for c in children]
    assert names == ["rtvoice-bridge-support"] * 2 + [
        "rtvoice-bridge-support-headless",
        child_name("support"),
    ]
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "voice"
        assert meta["labels"][MANAGED_BY_LABEL] == "rtvoice-operator"
        assert meta["labels"][AGENT_LABEL] == "support"
        (owner,) = meta["ownerReferences"]
        assert owner == {
            "apiVersion": "rtvoice.io/v1alpha1",
            "kind": "VoiceAgent",
            "name": "support",
            "uid": AGENT.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_configmap_holds_camelcase_agent_file_that_loads_back(tmp_path: Any) -> None:
    settings = _openai(
        instructions="Be brief.", turnDetection={"type": "server_vad", "silenceDurationMs": 700}
    )
    data = render_configmap(AGENT, settings)["data"]["agent.yaml"]
    doc = yaml.safe_load(data)
    assert doc["kind"] == "VoiceAgent" and doc["metadata"] == {"name": "support", "namespace": "voice"}
    assert doc["spec"]["turnDetection"]["silenceDurationMs"] == 700  # camelCase keys
    assert "secret_ref" not in data and doc["spec"]["credentials"]["secretRef"] == {
        "name": "openai",
        "key": "k",
    }
    path = tmp_path / "agent.yaml"
    path.write_text(data)
    loaded = load_agent_file(path)  # the bridge reads it exactly like this
    assert loaded.name == "support" and loaded.namespace == "voice" and loaded.spec == settings


def test_deployment_runs_the_bridge_with_secret_probes_and_drain() -> None:
    dep = render_deployment(AGENT, _openai(replicas=3), CFG)
    spec = dep["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "rtvoice-bridge",
        AGENT_LABEL: "support",
    }
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == CFG.termination_grace_s
    assert pod["automountServiceAccountToken"] is False
    bridge = _containers(dep)["bridge"]
    assert set(_containers(dep)) == {"bridge"}  # no offline-engine sidecar for openai
    assert bridge["image"] == "registry.example/rtvoice:1.2.3"
    args = bridge["args"]
    assert args[0] == "bridge"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs == {
        "--host": "0.0.0.0",
        "--port": "50051",
        "--agent-file": "/etc/rtvoice/agent/agent.yaml",
        "--recorder": "rec.rtvoice.svc:50052",
        "--drain-timeout-s": str(drain_timeout_s(CFG.termination_grace_s, CFG)),
        "--metrics-port": "9464",
        "--api-key-file": "/etc/rtvoice/provider/api-key",
    }
    assert drain_timeout_s(CFG.termination_grace_s, CFG) == CFG.termination_grace_s - CFG.prestop_delay_s - 5
    assert "env" not in bridge  # the API key is a mounted file (rotation reaches the running pod), not env
    assert bridge["readinessProbe"]["exec"]["command"][-2:] == ["--grpc", "127.0.0.1:50051"]
    assert bridge["livenessProbe"]["tcpSocket"] == {"port": 50051}
    assert bridge["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(CFG.prestop_delay_s)]
    assert bridge["resources"] == CFG.bridge_resources
    mounts = {m["name"]: m for m in bridge["volumeMounts"]}
    assert mounts["agent"] == {"name": "agent", "mountPath": "/etc/rtvoice/agent", "readOnly": True}
    assert mounts["api-key"] == {"name": "api-key", "mountPath": "/etc/rtvoice/provider", "readOnly": True}
    assert "subPath" not in mounts["api-key"]  # subPath mounts never see a rotated Secret
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["agent"]["configMap"]["name"] == "rtvoice-bridge-support"
    assert volumes["api-key"]["secret"] == {
        "secretName": "openai",
        "items": [{"key": "k", "path": "api-key"}],
    }
    assert set(volumes) == {"agent", "tmp", "api-key"}  # no internal-token Secret unless configured


def test_no_api_key_file_without_secret_ref() -> None:
    dep = render_deployment(AGENT, parse_settings({"provider": "local"}), CFG)
    assert "env" not in _containers(dep)["bridge"]
    assert "--api-key-file" not in _containers(dep)["bridge"]["args"]
    assert {v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]} == {"agent", "tmp"}


def test_local_provider_gets_the_offline_engine_sidecar() -> None:
    settings = parse_settings(
        {
            "provider": "local",
            "localEngine": {"phrases": ["hello there"], "chatCompletionsUrl": "http://llm:8000/v1"},
        }
    )
    containers = _containers(render_deployment(AGENT, settings, CFG))
    engine = containers["local-engine"]
    assert engine["args"][:5] == ["local-realtime", "--host", "127.0.0.1", "--port", "8765"]
    assert engine["args"][5:] == settings.local_engine.cli_args()  # the one mapping `rtvoice up` uses too
    assert engine["args"][5:7] == ["--phrase", "hello there"]
    assert engine["resources"] == CFG.engine_resources
    bridge_args = containers["bridge"]["args"]
    assert bridge_args[bridge_args.index("--provider-url") + 1] == "ws://127.0.0.1:8765/v1/realtime"


def _hash(settings: AgentSettings, agent: AgentRef = AGENT) -> str:
    annotations = render_deployment(agent, settings, CFG)["spec"]["template"]["metadata"]["annotations"]
    return str(annotations[SETTINGS_HASH_ANNOTATION])


def test_settings_hash_changes_with_any_setting_and_is_stable() -> None:
    base = _hash(_openai(instructions="A"))
    assert base == _hash(_openai(instructions="A"))  # deterministic
    assert len(base) == 16
    assert base != _hash(_openai(instructions="B"))
    assert base != _hash(_openai(instructions="A", voice="cedar"))
    assert base != _hash(_openai(instructions="A"), AgentRef("support", "other", AGENT.uid))


def test_render_is_pure() -> None:
    settings = _openai()
    assert render_children(AGENT, settings, CFG) == render_children(AGENT, settings, CFG)


def test_service_routes_grpc_to_the_bridge_pods() -> None:
    svc = render_service(AGENT)
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "rtvoice-bridge", AGENT_LABEL: "support"}
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["appProtocol"]) == (50051, "grpc", "grpc")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"provider": "openai", "voice": "Puck"}, "VoiceNotOffered"),
        ({"provider": "gemini", "voice": "marin"}, "VoiceNotOffered"),
        ({"provider": "openai", "apiShape": "beta", "voice": "marin"}, "VoiceNotOffered"),
        ({"provider": "gemini", "turnDetection": {"type": "semantic_vad"}}, "UnsupportedTurnDetection"),
        ({"provider": "openai", "temperature": 0.8}, "UnsupportedTemperature"),
        ({"provider": "openai", "apiShape": "beta", "temperature": 1.9}, "UnsupportedTemperature"),
        (
            {
                "provider": "local",
                "tools": [
                    {"name": "lookup", "endpoint": "http://a"},
                    {"name": "lookup", "endpoint": "http://b"},
                ],
            },
            "DuplicateToolName",
        ),
        (
            {"provider": "openai", "providerParamOverrides": {"audio": {"output": {"format": "x"}}}},
            "ForbiddenOverride",
        ),
        (
            {"provider": "gemini", "providerParamOverrides": {"generationConfig": {"speechConfig": {}}}},
            "ForbiddenOverride",
        ),
        ({"provider": "local", "providerParamOverrides": {"instructions": "x"}}, "ForbiddenOverride"),
    ],
)
def test_semantic_problems_found(spec: dict[str, Any], reason: str) -> None:
    spec.setdefault("credentials", {"secretRef": {"name": "key"}})
    problems = semantic_problems("agent", parse_settings(spec))
    assert [p.reason for p in problems] == [reason]
    assert problems[0].message.startswith("spec.")


@pytest.mark.parametrize(
    "spec",
    [
        {"provider": "local"},
        {"provider": "openai", "voice": "voice_abc123", "credentials": {"secretRef": {"name": "k"}}},
        {
            "provider": "openai",
            "apiShape": "beta",
            "temperature": 0.8,
            "credentials": {"secretRef": {"name": "k"}},
        },
        {
            "provider": "gemini",
            "voice": "Kore",
            "temperature": 1.5,
            "credentials": {"secretRef": {"name": "k"}},
        },
        {"provider": "openai", "baseUrl": "wss://llm.internal/v1/realtime"},
        {
            "provider": "openai",
            "credentials": {"secretRef": {"name": "k"}},
            "providerParamOverrides": {"audio": {"input": {"noise_reduction": {"type": "far_field"}}}},
        },
    ],
)
def test_semantic_problems_none(spec: dict[str, Any]) -> None:
    assert semantic_problems("agent", parse_settings(spec)) == []


def test_missing_credentials_and_bad_names() -> None:
    reasons = [p.reason for p in semantic_problems("agent", parse_settings({"provider": "gemini"}))]
    assert reasons == ["MissingCredentials"]
    too_long = "a" * (MAX_AGENT_NAME_LENGTH + 1)  # its headless Service name would pass 63 characters
    assert [p.reason for p in semantic_problems(too_long, parse_settings({}))] == ["InvalidAgentName"]
    assert [p.reason for p in semantic_problems("with.dot", parse_settings({}))] == ["InvalidAgentName"]
    assert semantic_problems("a" * MAX_AGENT_NAME_LENGTH, parse_settings({})) == []
    assert MAX_AGENT_NAME_LENGTH == 39


def _deployment(
    replicas: int, ready: int, updated: int, generation: int = 2, observed: int = 2
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": updated,
            "updatedReplicas": updated,
            "readyReplicas": ready,
        },
    }


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_status_ready_progressing_and_transition_times() -> None:
    first = build_status(
        generation=4, previous=None, config_problems=[], deployment=_deployment(2, 1, 2), now="T1"
    )
    assert first["observedGeneration"] == 4
    assert _conds(first) == {
        "Ready": ("False", "ReplicasNotReady"),
        "ConfigValid": ("True", "Valid"),
        "Progressing": ("False", "RolloutComplete"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("False", "NotStalled"),
    }
    assert all(c["observedGeneration"] == 4 and c["lastTransitionTime"] == "T1" for c in first["conditions"])
    second = build_status(
        generation=4, previous=first, config_problems=[], deployment=_deployment(2, 2, 2), now="T2"
    )
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert _conds(second)["Ready"] == ("True", "ReplicasReady")
    assert times == {
        "Ready": "T2",
        "ConfigValid": "T1",
        "Progressing": "T1",
        "Reconciling": "T1",
        "Stalled": "T1",
    }
    assert not status_changed(second, build_status(
        generation=4, previous=second, config_problems=[], deployment=_deployment(2, 2, 2), now="T3"
    ))  # fmt: skip
    rolling = build_status(
        generation=5, previous=second, config_problems=[], deployment=_deployment(2, 2, 2, 3, 2), now="T4"
    )
    assert _conds(rolling)["Progressing"] == ("True", "RollingOut")
    assert _conds(rolling)["Reconciling"] == ("True", "RollingOut")  # kstatus: InProgress
    assert _conds(rolling)["Stalled"][0] == "False"
    assert _conds(
        build_status(
            generation=5, previous=None, config_problems=[], deployment=_deployment(0, 0, 0), now="T"
        )
    )["Ready"] == ("False", "ScaledToZero")


def test_status_for_invalid_settings() -> None:
    problems = semantic_problems("a", parse_settings({"provider": "openai", "voice": "Puck"}))
    status = build_status(generation=1, previous=None, config_problems=problems, deployment=None, now="T")
    conds = {c["type"]: c for c in status["conditions"]}
    assert (conds["ConfigValid"]["status"], conds["ConfigValid"]["reason"]) == ("False", "VoiceNotOffered")
    assert (
        "Puck" in conds["ConfigValid"]["message"]
        and "MissingCredentials" not in conds["ConfigValid"]["reason"]
    )
    assert conds["Ready"]["reason"] == "InvalidSettings" and conds["Progressing"]["status"] == "False"
    # kstatus: Stalled=True (Failed), not reconciling, so Argo CD / Flux do not report the agent Current.
    assert (conds["Stalled"]["status"], conds["Stalled"]["reason"]) == ("True", "InvalidSettings")
    assert "Puck" in conds["Stalled"]["message"] and conds["Reconciling"]["status"] == "False"


def test_operator_config_from_env_and_errors() -> None:
    env = {
        "RTVOICE_BRIDGE_IMAGE": "img:1",
        "RTVOICE_RECORDER_ADDRESS": "rec:1",
        "RTVOICE_TERMINATION_GRACE_S": "120",
        "RTVOICE_BRIDGE_RESOURCES": '{"requests": {"cpu": "1"}}',
        "RTVOICE_IMAGE_PULL_SECRETS": "a,b",
    }
    cfg = OperatorConfig.from_env(env, bridge_image="img:2", recorder_address=None)
    assert cfg.bridge_image == "img:2" and cfg.recorder_address == "rec:1"  # flags win, None = unset
    assert cfg.termination_grace_s == 120 and cfg.bridge_resources == {"requests": {"cpu": "1"}}
    assert cfg.image_pull_secrets == ("a", "b")
    for bad in (
        {"RTVOICE_TERMINATION_GRACE_S": "soon"},
        {"RTVOICE_BRIDGE_RESOURCES": "{"},
        {"RTVOICE_BRIDGE_RESOURCES": '{"cpu": 1}'},
        {"RTVOICE_RECORDER_ADDRESS": "no-port"},
        {"RTVOICE_IMAGE_PULL_POLICY": "Sometimes"},
        {"RTVOICE_PRESTOP_DELAY_S": "400"},
    ):
        with pytest.raises(OperatorConfigError):
            OperatorConfig.from_env(bad)
