"""A recorder restart mid-session loses nothing: RecorderLink re-opens, resends the un-acked tail, and the
archive's caller channel is sample-exact (no gap, no duplicate) against a known signal."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from rtvoice.bridge.recorder_link import RecorderLink
from rtvoice.recorder.server import RecorderConfig, RecorderServer
from rtvoice.recorder.stores import LocalStore
from rtvoice.v1 import frames_pb2 as pb
from tests.support.recorder import (
    FRAME,
    Feeder,
    RecorderProcess,
    assert_caller_signal,
    load_archive,
    record_start,
)


def _config(tmp_path: Path, **kw: Any) -> RecorderConfig:
    return RecorderConfig(
        spool_dir=tmp_path / "spool", store=LocalStore(tmp_path / "archive"), resume_grace_s=20.0, **kw
    )


def _check_archive(tmp_path: Path, session_id: str, samples: int) -> dict[str, Any]:
    arc = load_archive(tmp_path / "archive" / session_id)
    assert_caller_signal(arc["audio"][:, 0], samples)
    m = arc["manifest"]
    assert m["complete"] is True and m["end_reason"] == "caller_hangup"
    assert m["counts"]["caller_audio_frames"] == samples // FRAME
    assert m["counts"]["resumes"] == 1
    return m


async def test_in_process_restart_on_the_same_spool(tmp_path: Path) -> None:
    # Server A acks rarely, so frames are surely un-acked when it stops.
    a = RecorderServer(_config(tmp_path, sync_interval_s=5.0))
    port = await a.start()
    link = RecorderLink(f"127.0.0.1:{port}", record_start("restart-1"), clock_t0_ns=time.monotonic_ns())
    link.open()
    feeder = Feeder(link)
    await feeder.feed(40)
    await asyncio.sleep(0.1)
    assert link.durable_seq < 40  # a tail is waiting for its ack
    await a.stop(grace_s=0)
    await feeder.feed(15)  # queued by the link while no recorder runs
    b = RecorderServer(_config(tmp_path), port=port)
    assert await b.start() == port
    try:
        await feeder.feed(40)
        uri = await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=15)
    finally:
        await b.stop(grace_s=0)
    assert uri == (tmp_path / "archive" / "restart-1").resolve().as_uri()
    assert link.connects == 2 and link.frames_dropped == 0
    _check_archive(tmp_path, "restart-1", feeder.pos)


async def test_recorder_process_killed_and_restarted(tmp_path: Path) -> None:
    args = ["--spool-dir", str(tmp_path / "spool"), "--archive-dir", str(tmp_path / "archive")]
    first = RecorderProcess([*args, "--resume-grace-s", "20"])
    port = await first.start()
    link = RecorderLink(f"127.0.0.1:{port}", record_start("restart-2"), clock_t0_ns=time.monotonic_ns())
    link.open()
    feeder = Feeder(link)
    # The caller keeps talking in real time while the recorder dies and comes back (~1 s start-up).
    talking = asyncio.create_task(feeder.feed(400))
    second = RecorderProcess([*args, "--port", str(port)])
    try:
        await feeder.until(60)
        await first.kill()  # SIGKILL mid-session: only what was checkpointed survives in the spool
        await feeder.until(70)
        await second.start()
        await talking
        uri = await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=20)
    finally:
        talking.cancel()
        for proc in (first, second):
            if proc.proc is not None and proc.proc.returncode is None:
                await proc.kill()
    assert uri is not None and uri.endswith("/archive/restart-2")
    m = _check_archive(tmp_path, "restart-2", feeder.pos)
    assert m["counts"]["frames"] >= 400
