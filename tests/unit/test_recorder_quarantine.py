"""Damaged spool entries are quarantined, never truncated or deleted; the recorder starts regardless.

Each case records part of a real session (a real recorder over gRPC), stops the recorder, damages one
spool file the way a crash or a bad disk would, and starts a recorder on the same spool.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rtvoice.recorder.archive_source import LocalArchive
from rtvoice.recorder.checkpoint import last_state
from rtvoice.recorder.cli import register
from rtvoice.recorder.quarantine import REASON, list_quarantine
from rtvoice.recorder.sessions_cmd import sessions_list
from rtvoice.recorder.spool import CHECKPOINT, FINALIZED, LEGACY_STATE, QUARANTINE, START
from rtvoice.recorder.stores import LocalStore
from tests.support.recorder import Frames, running_recorder, send_session, tone, wait_for


def _hashes(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != REASON
    }


async def _unfinished(tmp_path: Path, sid: str) -> Path:
    """A session whose stream broke mid-call: its spool entry waits (long grace) for a resume."""
    f = Frames(sid)
    f.caller_stream(0, tone(440, 1500))
    async with running_recorder(tmp_path, resume_grace_s=60) as server:
        acks = await send_session(server.port, f.frames, wait_final=False)
        assert acks[-1].durable_seq == f.seq
    entry = tmp_path / "spool" / sid
    assert (entry / CHECKPOINT).exists() and (entry / "caller.pcm").stat().st_size > 40_000
    return entry


async def _finalized_not_uploaded(tmp_path: Path, sid: str) -> Path:
    """A finished archive still in the spool: the store was unreachable (its root is a file)."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    f = Frames(sid)
    f.caller_stream(0, tone(440, 500))
    f.end(600)
    async with running_recorder(tmp_path, LocalStore(blocked / "archive"), upload_wait_s=0) as server:
        acks = await send_session(server.port, f.frames)
        assert acks[-1].finalized
    entry = tmp_path / "spool" / sid
    assert (entry / FINALIZED).exists()
    return entry


def _to_legacy(entry: Path) -> dict[str, object]:
    """Rewrite the checkpoint as the older single-document ``state.json``."""
    state, _ = last_state((entry / CHECKPOINT).read_bytes())
    assert state is not None
    (entry / CHECKPOINT).unlink()
    (entry / LEGACY_STATE).write_text(json.dumps(state))
    return state


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(max(64, path.stat().st_size)))


def _legacy_truncated(entry: Path) -> None:
    _to_legacy(entry)
    _truncate(entry / LEGACY_STATE)


def _legacy_missing_keys(entry: Path) -> None:
    state = _to_legacy(entry)
    del state["caller"]
    (entry / LEGACY_STATE).write_text(json.dumps(state))


UNFINISHED_CASES: dict[str, Callable[[Path], None]] = {
    "legacy state.json truncated": _legacy_truncated,
    "legacy state.json without caller": _legacy_missing_keys,
    "checkpoint.log garbage": lambda e: _garbage(e / CHECKPOINT),
    "start.pb truncated": lambda e: _truncate(e / START),
    "start.pb garbage": lambda e: _garbage(e / START),
}


@pytest.mark.parametrize("case", sorted(UNFINISHED_CASES))
async def test_damaged_unfinished_entry_is_quarantined_untouched(tmp_path: Path, case: str) -> None:
    entry = await _unfinished(tmp_path, "dmg-1")
    UNFINISHED_CASES[case](entry)
    before = _hashes(entry)
    async with running_recorder(tmp_path, resume_grace_s=0.2) as server:
        assert server.service.quarantined == 1
        # The recorder works for other sessions.
        f = Frames("after-1")
        f.caller_stream(0, tone(300, 200))
        f.end(300)
        assert (await send_session(server.port, f.frames))[-1].finalized
    assert not entry.exists()
    moved = tmp_path / "spool" / QUARANTINE / "dmg-1"
    assert _hashes(moved) == before  # byte for byte: nothing truncated, nothing deleted
    reason = (moved / REASON).read_text()
    assert reason.count("\n") == 1 and len(reason) > 25
    assert not (tmp_path / "archive" / "dmg-1").exists()  # no empty archive was made of it


async def test_truncated_finalized_json_is_quarantined(tmp_path: Path) -> None:
    entry = await _finalized_not_uploaded(tmp_path, "dmg-fin")
    _truncate(entry / FINALIZED)
    before = _hashes(entry)
    async with running_recorder(tmp_path) as server:
        assert server.service.quarantined == 1 and server.service.pending_uploads == []
    moved = tmp_path / "spool" / QUARANTINE / "dmg-fin"
    assert _hashes(moved) == before
    assert "finalized.json" in (moved / REASON).read_text()


async def test_a_good_legacy_state_json_still_resumes(tmp_path: Path) -> None:
    entry = await _unfinished(tmp_path, "legacy-1")
    _to_legacy(entry)
    async with running_recorder(tmp_path, resume_grace_s=0.2) as server:
        assert server.service.quarantined == 0
        await wait_for((tmp_path / "archive" / "legacy-1" / "manifest.json").exists)  # after the grace
    m = json.loads((tmp_path / "archive" / "legacy-1" / "manifest.json").read_text())
    assert m["end_reason"] == "stream_broken" and m["complete"] is False
    assert m["audio"]["samples"] >= 1500 * 16


async def test_sessions_list_shows_quarantined_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = await _unfinished(tmp_path, "dmg-list")
    _garbage(entry / START)
    async with running_recorder(tmp_path):
        pass
    out = io.StringIO()
    assert sessions_list(LocalArchive(tmp_path / "archive"), out, list_quarantine(tmp_path / "spool")) == 0
    assert "QUARANTINED  dmg-list  " in out.getvalue() and "start.pb" in out.getvalue()
    parser = argparse.ArgumentParser(prog="rtvoice")
    register(parser.add_subparsers())
    args = parser.parse_args(["sessions", "--archive-dir", str(tmp_path / "archive"),
                              "--spool-dir", str(tmp_path / "spool"), "list"])  # fmt: skip
    assert args.func(args) == 0
    assert "QUARANTINED  dmg-list" in capsys.readouterr().out
