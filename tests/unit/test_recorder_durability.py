"""Acks mean fdatasync'ed; short writes are completed; the checkpoint log survives torn tails; modes.

The fdatasync and pwrite spies wrap the real calls (they observe or shorten, the data still goes to disk).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import grpc
import numpy as np
import pytest

from rtvoice.recorder import checkpoint as checkpoint_mod
from rtvoice.recorder.checkpoint import CheckpointLog, encode_state, last_state
from rtvoice.recorder.spool import CHECKPOINT, write_all
from rtvoice.recorder.stores import ArchiveMode, LocalStore
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc
from tests.support.recorder import Frames, load_archive, running_recorder, saw, send_session

_real_fdatasync = os.fdatasync
_real_pwrite = os.pwrite


def _name(fd: int) -> str:
    return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))


async def test_every_ack_follows_an_fdatasync_of_the_audio_and_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (file name, seq the checkpoint covers) per fdatasync, appended after the real call returned.
    synced: list[tuple[str, int]] = []

    def spy(fd: int) -> None:
        _real_fdatasync(fd)
        name = _name(fd)
        seq = -1
        if name == CHECKPOINT:
            state, _ = last_state(os.pread(fd, os.fstat(fd).st_size, 0))
            seq = state["durable_seq"] if state else -1
        synced.append((name, seq))

    monkeypatch.setattr(os, "fdatasync", spy)
    f = Frames("sync-1")
    f.caller_stream(0, saw(0, 16000 * 2))
    batches = [f.frames[i : i + 3] for i in range(0, len(f.frames), 3)]  # ~40 ms per batch, as the link
    async with running_recorder(tmp_path) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = recorder_pb2_grpc.RecorderStub(channel).Record()
            for batch in batches:
                await call.write(rpb.RecordBatch(frames=batch))
            acks = 0
            async for ack in call:
                assert ack.recorder_id == server.service.recorder_id != ""
                if ack.durable_seq > 1:  # past the start: caller audio is in the spool
                    done = [
                        i for i, (n, seq) in enumerate(synced) if n == CHECKPOINT and seq >= ack.durable_seq
                    ]
                    assert done, f"ack {ack.durable_seq} before its checkpoint was synced"
                    prev = max(
                        (i for i, (n, _) in enumerate(synced[: done[0]]) if n == CHECKPOINT), default=-1
                    )
                    step = [n for n, _ in synced[prev + 1 : done[0]]]
                    assert "caller.pcm" in step, step  # the audio was synced before that checkpoint
                    acks += 1
                if ack.durable_seq == f.seq:
                    break
            call.cancel()
    checkpoints = sum(1 for n, _ in synced if n == CHECKPOINT)
    assert 1 <= acks <= len(batches)  # one sync per batch at most (fewer when batches arrive meanwhile)
    assert checkpoints <= len(batches) + 1  # + the first checkpoint at session start


async def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def short_pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        return _real_pwrite(fd, memoryview(data)[:7], offset)  # the OS may write less than asked

    monkeypatch.setattr(os, "pwrite", short_pwrite)
    f = Frames("short-1")
    f.caller_stream(0, saw(0, 16000))
    f.end(1100)
    async with running_recorder(tmp_path) as server:
        assert (await send_session(server.port, f.frames))[-1].finalized
    monkeypatch.setattr(os, "pwrite", _real_pwrite)
    arc = load_archive(tmp_path / "archive" / "short-1")
    left = arc["audio"][:, 0]
    first = int(np.flatnonzero(left)[0])
    np.testing.assert_array_equal(left[first : first + 16000], saw(0, 16000))
    assert arc["manifest"]["complete"] is True


def test_a_write_that_makes_no_progress_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: 0)
    fd = os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="no progress"):
            write_all(fd, b"abc", 0)
    finally:
        os.close(fd)


def test_checkpoint_log_ignores_a_torn_tail_and_compacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / CHECKPOINT
    log = CheckpointLog(path)
    for i in range(5):
        log.append(encode_state({"n": i}))
    log.close()
    with open(path, "ab") as f:
        f.write(encode_state({"n": 99})[:-3])  # power loss mid-append
    state, size = last_state(path.read_bytes())
    assert state == {"n": 4} and size < path.stat().st_size
    log = CheckpointLog(path)  # reopening cuts the torn bytes, so the next record is readable
    assert path.stat().st_size == size
    log.append(encode_state({"n": 5}))
    assert last_state(path.read_bytes())[0] == {"n": 5}
    monkeypatch.setattr(checkpoint_mod, "COMPACT_BYTES", 200)
    for i in range(20):
        log.append(encode_state({"n": 100 + i}))
    log.close()
    assert path.stat().st_size <= 200 and last_state(path.read_bytes())[0] == {"n": 119}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


async def test_archive_and_spool_are_owner_only_by_default(tmp_path: Path) -> None:
    f = Frames("perm-1")
    f.caller_stream(0, saw(0, 3200))
    async with running_recorder(tmp_path, resume_grace_s=60) as server:
        await send_session(server.port, f.frames, wait_final=False)
        entry = tmp_path / "spool" / "perm-1"
        assert stat.S_IMODE(entry.stat().st_mode) == 0o700 and _modes(entry) == {0o600}
    g = Frames("perm-2")
    g.caller_stream(0, saw(0, 3200))
    g.end(300)
    async with running_recorder(tmp_path) as server:
        assert (await send_session(server.port, g.frames))[-1].finalized
    folder = tmp_path / "archive" / "perm-2"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert _modes(folder) == {0o600}


async def test_archive_mode_for_a_shared_group(tmp_path: Path) -> None:
    gid = os.getgid()
    store = LocalStore(tmp_path / "archive", ArchiveMode(0o750, str(gid)))
    g = Frames("perm-3")
    g.caller_stream(0, saw(0, 3200))
    g.end(300)
    async with running_recorder(tmp_path, store) as server:
        assert (await send_session(server.port, g.frames))[-1].finalized
    folder = tmp_path / "archive" / "perm-3"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750 and _modes(folder) == {0o640}
    assert {p.stat().st_gid for p in folder.iterdir()} == {gid}
    with pytest.raises(ValueError, match="owner rwx"):
        ArchiveMode(0o640)
    with pytest.raises(ValueError, match="unknown group"):
        ArchiveMode(0o750, "no-such-group-rtvoice")
