"""Agent settings: the VoiceAgent document, validation messages and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtvoice.core.settings import (
    SettingsError,
    deep_merge,
    load_agent_file,
    parse_agent_document,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_agent_files_load() -> None:
    for path in [ROOT / "services/rtvoice/up/agent.yaml", *sorted((ROOT / "examples").glob("*.yaml"))]:
        doc = load_agent_file(path)
        assert doc.name and doc.spec.provider in ("local", "openai", "gemini")


def test_defaults_and_camel_case() -> None:
    s = parse_settings({"turnDetection": {"silenceDurationMs": 300}, "audio": {"input": "g711_mulaw"}})
    assert s.turn_detection.silence_duration_ms == 300
    assert s.turn_detection.threshold == 0.5
    assert s.audio.input == "g711_mulaw" and s.audio.output == "pcm16_16k"
    assert s.effective_model == "rtvoice-local-1"
    assert s.to_public_dict()["turnDetection"]["silenceDurationMs"] == 300


def test_errors_name_every_bad_field() -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings({"provider": "x", "turnDetection": {"threshold": 3}, "bogus": 1})
    text = str(err.value)
    assert "spec.provider" in text and "spec.turnDetection.threshold" in text and "spec.bogus" in text


def test_document_kind_and_api_version_are_checked() -> None:
    with pytest.raises(SettingsError, match="kind"):
        parse_agent_document({"kind": "Pod", "spec": {}})
    with pytest.raises(SettingsError, match="apiVersion"):
        parse_agent_document({"apiVersion": "v1", "kind": "VoiceAgent", "spec": {}})
    doc = parse_agent_document({"provider": "openai"})
    assert doc.name == "default" and doc.spec.provider == "openai"


def test_missing_and_malformed_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read agent file"):
        load_agent_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_agent_file(bad)


def test_overrides_deep_merge_and_revalidate() -> None:
    s = parse_settings({"turnDetection": {"threshold": 0.7}})
    t = s.with_overrides({"turnDetection": {"silenceDurationMs": 200}, "voice": "ash"})
    assert t.turn_detection.threshold == 0.7 and t.turn_detection.silence_duration_ms == 200
    assert t.voice == "ash"
    with pytest.raises(SettingsError):
        s.with_overrides({"turnDetection": {"threshold": -1}})
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}, "d": 4}) == {"a": {"b": 3, "c": 2}, "d": 4}
