"""`rtvoice up` refuses bad agent files and missing keys with one clear message, before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtvoice.cli import main


def _agent(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text("apiVersion: rtvoice.io/v1alpha1\nkind: VoiceAgent\nmetadata: {name: x}\n" + body)
    return path


def _up(tmp_path: Path, agent: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["up", "-f", str(agent), "--port", "0", "--state-dir", str(tmp_path / "state"), "--quiet"])
    return rc, capsys.readouterr().err


def test_schema_errors_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _up(tmp_path, _agent(tmp_path, "spec: {turnDetection: {threshold: 7}}\n"), capsys)
    assert rc == 1 and "spec.turnDetection.threshold" in err and "Traceback" not in err


def test_operator_rules_apply_locally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    spec = "spec:\n  provider: openai\n  voice: Puck\n"
    rc, err = _up(tmp_path, _agent(tmp_path, spec), capsys)
    assert rc == 1 and "'Puck' is not a openai voice" in err


def test_missing_api_key_says_which_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "RTVOICE_PROVIDER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    rc, err = _up(tmp_path, _agent(tmp_path, "spec: {provider: openai}\n"), capsys)
    assert rc == 1 and "set OPENAI_API_KEY" in err and not (tmp_path / "state" / "up.json").exists()
