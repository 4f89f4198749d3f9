"""``rtvoice bridge`` command line: API key resolution and one-line start-up errors."""

from __future__ import annotations

import argparse
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtvoice.bridge import cli
from rtvoice.core.settings import parse_settings


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """``cli.main`` calls ``setup_logging``, which replaces the root handlers: restore them afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["bridge", *argv])


def test_api_key_resolution_order() -> None:
    s = parse_settings({"provider": "openai", "credentials": {"apiKeyEnv": "MY_KEY"}})
    env = {"OPENAI_API_KEY": "c", "MY_KEY": "b", "RTVOICE_PROVIDER_API_KEY": "a"}
    assert cli.resolve_api_key(s, env) == "a"
    del env["RTVOICE_PROVIDER_API_KEY"]
    assert cli.resolve_api_key(s, env) == "b"
    del env["MY_KEY"]
    assert cli.resolve_api_key(s, env) == "c"
    assert cli.resolve_api_key(parse_settings({"provider": "local"}), {}) is None


def test_bad_agent_file_and_missing_key_fail_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(parse("--agent-file", str(tmp_path / "missing.yaml"))) == 2
    err = capsys.readouterr().err
    assert "cannot read agent file" in err and "Traceback" not in err
    agent = tmp_path / "a.yaml"
    agent.write_text("spec: {provider: openai}\n")
    for name in ("RTVOICE_PROVIDER_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(parse("--agent-file", str(agent))) == 2
    assert "no API key for provider openai" in capsys.readouterr().err
    agent.write_text("spec: {provider: local}\n")
    assert cli.main(parse("--agent-file", str(agent))) == 2
    assert "--provider-url" in capsys.readouterr().err


def test_port_in_use_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agent = tmp_path / "a.yaml"
    agent.write_text("spec: {provider: local}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(
            parse(
                "--agent-file",
                str(agent),
                "--provider-url",
                "ws://127.0.0.1:1/v1/realtime",
                "--port",
                str(port),
            )
        )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"rtvoice bridge: cannot listen on 127.0.0.1:{port}")
