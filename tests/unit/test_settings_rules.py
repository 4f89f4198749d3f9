"""The provider and cross-field rules belong to the settings: validation refuses them with typed reasons,
``rtvoice bridge`` refuses an agent file that breaks them, and so do per-session overrides."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rtvoice.bridge import cli
from rtvoice.bridge.config import session_config
from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.core.settings import AgentSettings, SettingsError, parse_settings, validate_settings
from rtvoice.v1 import frames_pb2 as pb
from tests.unit.test_bridge_cli import _keep_root_logging  # noqa: F401  (autouse: cli.main resets logging)

DUPLICATE_TOOLS = [{"name": "lookup", "endpoint": "http://a"}, {"name": "lookup", "endpoint": "http://b"}]


@pytest.mark.parametrize(
    ("spec", "reason", "path"),
    [
        ({"provider": "openai", "voice": "Puck"}, "VoiceNotOffered", "voice"),
        ({"provider": "openai", "apiShape": "beta", "voice": "cedar"}, "VoiceNotOffered", "voice"),
        ({"provider": "gemini", "voice": "alloy"}, "VoiceNotOffered", "voice"),
        ({"provider": "local", "voice": "Puck"}, "VoiceNotOffered", "voice"),
        ({"provider": "openai", "temperature": 0.8}, "UnsupportedTemperature", "temperature"),
        (
            {"provider": "openai", "apiShape": "beta", "temperature": 0.5},
            "UnsupportedTemperature",
            "temperature",
        ),
        ({"provider": "local", "temperature": 0.8}, "UnsupportedTemperature", "temperature"),
        (
            {"provider": "gemini", "turnDetection": {"type": "semantic_vad"}},
            "UnsupportedTurnDetection",
            "turnDetection.type",
        ),
        ({"provider": "local", "tools": DUPLICATE_TOOLS}, "DuplicateToolName", "tools"),
        (
            {
                "provider": "gemini",
                "providerParamOverrides": {"realtimeInputConfig": {"activityHandling": "X"}},
            },
            "ForbiddenOverride",
            "providerParamOverrides",
        ),
    ],
)
def test_rules_refuse_with_reason_and_field(spec: dict[str, Any], reason: str, path: str) -> None:
    with pytest.raises(SettingsError) as err:
        validate_settings(spec, "agent.yaml")
    assert [(p.reason, p.path) for p in err.value.problems] == [(reason, path)]
    assert f"spec.{path}: " in str(err.value) and "agent.yaml" in str(err.value)
    with pytest.raises(ValidationError) as raw:
        AgentSettings.model_validate(spec)  # the model itself runs the rules: error type = reason
    assert [e["type"] for e in raw.value.errors()] == [reason]
    assert parse_settings(spec).provider == spec["provider"]  # the schema-only parse lets them through


def test_valid_settings_pass_every_rule() -> None:
    for spec in (
        {},
        {"provider": "openai", "voice": "voice_1234abcd"},
        {"provider": "openai", "apiShape": "beta", "temperature": 1.2, "voice": "verse"},
        {"provider": "gemini", "voice": "Kore", "temperature": 0.0, "turnDetection": {"type": "none"}},
        {"provider": "local", "voice": "en-gb+m3"},
        {"provider": "local", "voice": "cedar"},
        {"provider": "openai", "providerParamOverrides": {"audio": {"input": {"noise_reduction": None}}}},
    ):
        validate_settings(spec)
    assert validate_settings({"provider": "openai", "apiShape": "beta"}).effective_voice == "alloy"
    assert validate_settings({"provider": "openai"}).effective_voice == "marin"


def test_schema_errors_carry_no_rule_problems() -> None:
    with pytest.raises(SettingsError) as err:
        validate_settings({"turnDetection": {"threshold": 3}})
    assert err.value.problems == () and "spec.turnDetection.threshold" in str(err.value)


def test_bridge_refuses_an_agent_file_that_breaks_a_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "spec:\n  provider: local\n  tools:\n"
        "    - {name: lookup, endpoint: 'http://a'}\n    - {name: lookup, endpoint: 'http://b'}\n"
    )
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    with socket.socket() as taken:  # were the file accepted, the bridge would fail to listen (exit 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        args = parser.parse_args(
            ["bridge", "--agent-file", str(agent), "--provider-url", "ws://127.0.0.1:1/v1/realtime",
             "--port", str(taken.getsockname()[1])]
        )  # fmt: skip
        assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "spec.tools: has duplicate names: lookup" in err and "Traceback" not in err


def test_per_session_overrides_are_judged_by_the_same_rules() -> None:
    base = validate_settings({"provider": "openai"})
    with pytest.raises(RealtimeProtocolError) as err:
        session_config(base, pb.SessionStart(overrides_json='{"voice": "Puck"}'))
    assert err.value.code == "invalid_overrides" and "'Puck' is not a openai voice" in str(err.value)
    with pytest.raises(RealtimeProtocolError) as err2:
        session_config(base, pb.SessionStart(overrides_json='{"temperature": 0.9}'))
    assert err2.value.code == "invalid_overrides" and "spec.temperature" in str(err2.value)
    gemini = validate_settings({"provider": "gemini"})
    assert (
        session_config(gemini, pb.SessionStart(overrides_json='{"voice": "Kore"}')).settings.voice == "Kore"
    )
