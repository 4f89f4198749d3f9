"""`rtvoice up`'s supervisor: stop order and per-service stop timeouts; the owner-only state file."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from rtvoice.core.shutdown import CUT_SESSIONS_END_S, DRAIN_TIMEOUT_S, drain_stop_timeout_s
from rtvoice.up.cli import write_private_file
from rtvoice.up.supervisor import Child, Supervisor

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
)


class _Exited:
    """Stands in for an exited ``asyncio.subprocess.Process`` (stop_order only reads the service)."""

    returncode = 0
    pid = 0


def _child(service: str) -> Child:
    proc: Any = _Exited()
    return Child(service, [], proc)


def test_stop_order_is_callers_first_whatever_the_start_or_restart_order() -> None:
    sup = Supervisor(echo_logs=False)
    # Start order engine, recorder, bridge, ingress; then the bridge was restarted (appended last).
    sup.children = [_child(s) for s in ("local-realtime", "recorder", "ingress", "bridge")]
    assert [c.service for c in sup.stop_order()] == ["ingress", "bridge", "recorder", "local-realtime"]


def test_a_draining_service_gets_its_drain_plus_the_end_of_cut_sessions() -> None:
    assert drain_stop_timeout_s(DRAIN_TIMEOUT_S) > DRAIN_TIMEOUT_S + CUT_SESSIONS_END_S
    assert drain_stop_timeout_s(0) > CUT_SESSIONS_END_S
    with pytest.raises(ValueError):
        drain_stop_timeout_s(-1)


def test_the_auth_secret_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTVOICE_AUTH_SECRET", "from-the-shell")
    monkeypatch.setenv("SOME_OTHER", "kept")
    sup = Supervisor(echo_logs=False)
    assert "RTVOICE_AUTH_SECRET" not in sup._env and sup._env["SOME_OTHER"] == "kept"


async def test_stop_all_kills_a_child_that_outlives_its_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    # A real process that ignores SIGTERM: stop_all waits its stop timeout, then SIGKILLs and says so.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        IGNORES_SIGTERM,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and await proc.stdout.readline() == b"1\n"
    sup = Supervisor(echo_logs=False)
    sup.children = [Child("bridge", [], proc, stop_timeout_s=0.5)]
    await asyncio.wait_for(sup.stop_all(), 10)
    assert proc.returncode == -9
    assert "bridge did not stop within 0.5 s; killing it" in capsys.readouterr().err


def test_state_file_is_owner_only_from_creation(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        path = tmp_path / "up.json"
        path.write_text("old")
        path.chmod(0o644)
        write_private_file(path, b'{"token": "t"}')
    finally:
        os.umask(old)
    assert path.read_bytes() == b'{"token": "t"}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["up.json"]  # no temporary file left behind


def test_state_file_write_failure_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "up.json"
    with pytest.raises(OSError):
        write_private_file(target, b"{}")
    assert list(tmp_path.iterdir()) == []
