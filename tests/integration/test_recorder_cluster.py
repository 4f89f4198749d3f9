"""Two recorder processes on loopback behind one comma-list target: a session sticks to the instance
that acked it. Killed and restarted within the grace: one complete archive, and the other instance never
takes the session. Killed for good: the link opens part 2 on the other instance, and `rtvoice sessions
show` presents both parts (the first one archived once its recorder comes back) as one session."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtvoice.bridge.recorder_link import RecorderLink
from rtvoice.recorder.archive_source import LocalArchive
from rtvoice.recorder.sessions_cmd import sessions_list, sessions_show
from rtvoice.v1 import frames_pb2 as pb
from tests.support.recorder import (
    FRAME,
    Feeder,
    RecorderProcess,
    assert_caller_signal,
    load_archive,
    read_wav,
    record_start,
    saw,
    wait_for,
)

IDS = ("rec-a", "rec-b")


def _caller(folder: Path, samples: int) -> npt.NDArray[np.int16]:
    """``samples`` of the archive's caller channel from its first sound on."""
    left = read_wav(folder / "audio.wav")[1][:, 0]
    first = int(np.flatnonzero(left)[0])
    return left[first : first + samples]


def _args(tmp_path: Path, rid: str, grace_s: float, port: int = 0) -> list[str]:
    return ["--recorder-id", rid, "--spool-dir", str(tmp_path / f"spool-{rid}"),
            "--archive-dir", str(tmp_path / "archive"), "--resume-grace-s", str(grace_s),
            "--port", str(port)]  # fmt: skip


class Cluster:
    """Two recorder processes (ids :data:`IDS`, own spools, one shared archive folder) and a link to both."""

    def __init__(self, tmp_path: Path, sid: str, grace_s: float) -> None:
        self.tmp_path = tmp_path
        self.sid = sid
        self.grace_s = grace_s
        self.procs = {rid: RecorderProcess(_args(tmp_path, rid, grace_s)) for rid in IDS}
        self.started = [*self.procs.values()]
        self.link: RecorderLink
        self.feeder: Feeder

    async def start(self) -> tuple[str, str]:
        """Start both, stream 60 frames; returns (holder id, other id) once the holder acked."""
        for proc in self.procs.values():
            await proc.start()
        target = ",".join(f"127.0.0.1:{p.port}" for p in self.procs.values())
        self.link = RecorderLink(target, record_start(self.sid), clock_t0_ns=time.monotonic_ns(),
                                 resume_grace_s=self.grace_s)  # fmt: skip
        self.link.open()
        self.feeder = Feeder(self.link)
        await self.feeder.feed(60)
        await wait_for(lambda: self.link.recorder_id != "" and self.link.durable_seq > 30)
        holder = self.link.recorder_id
        return holder, next(r for r in IDS if r != holder)

    async def restart(self, rid: str, grace_s: float) -> None:
        """Start ``rid`` again on its old port and spool."""
        again = RecorderProcess(_args(self.tmp_path, rid, grace_s, port=self.procs[rid].port))
        self.started.append(again)
        await again.start()

    async def close(self) -> str | None:
        return await self.link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=20)

    async def stop(self) -> None:
        for proc in self.started:
            if proc.proc is not None and proc.proc.returncode is None:
                await proc.kill()


async def test_restart_within_grace_resumes_on_the_same_instance(tmp_path: Path) -> None:
    c = Cluster(tmp_path, "sticky-1", grace_s=15)
    try:
        holder_id, other_id = await c.start()
        # The caller keeps talking (ahead of real time, no gaps) while the holder dies and comes back.
        talking = asyncio.create_task(c.feeder.feed(200))
        await c.procs[holder_id].kill()
        await c.feeder.until(80)  # queued while the holder is down; the other instance refuses the session
        await c.restart(holder_id, 20)
        await talking
        uri = await c.close()
    finally:
        await c.stop()
    link, feeder = c.link, c.feeder
    assert uri is not None and uri.endswith("/archive/sticky-1")
    assert link.recorder_id == holder_id and link.part == 1 and link.connects >= 2
    m = load_archive(tmp_path / "archive" / "sticky-1")["manifest"]
    assert m["complete"] is True and m["recorder_id"] == holder_id and m["counts"]["resumes"] >= 1
    assert_caller_signal(read_wav(tmp_path / "archive" / "sticky-1" / "audio.wav")[1][:, 0], feeder.pos)
    assert not (tmp_path / f"spool-{other_id}" / "sticky-1").exists()
    assert not (tmp_path / "archive" / "sticky-1.part2").exists()


async def test_instance_gone_for_good_gives_two_parts_shown_as_one_session(tmp_path: Path) -> None:
    c = Cluster(tmp_path, "moved-1", grace_s=1.0)
    try:
        first_id, second_id = await c.start()
        talking = asyncio.create_task(c.feeder.feed(300))  # ~3.6 s: past the link's 1 s grace
        await c.procs[first_id].kill()
        await wait_for(lambda: c.link.part == 2 and c.link.recorder_id == second_id)
        await talking
        uri = await c.close()
        assert uri is not None and uri.endswith("/archive/moved-1.part2")
        # The first instance comes back later and archives what it held as part 1 (its grace expired).
        await c.restart(first_id, 0.5)
        await wait_for((tmp_path / "archive" / "moved-1" / "manifest.json").exists)
    finally:
        await c.stop()
    feeder = c.feeder
    part1 = json.loads((tmp_path / "archive" / "moved-1" / "manifest.json").read_text())
    part2 = json.loads((tmp_path / "archive" / "moved-1.part2" / "manifest.json").read_text())
    assert (part1["part"], part1["recorder_id"], part1["end_reason"]) == (1, first_id, "stream_broken")
    assert (part2["part"], part2["recorder_id"], part2["end_reason"]) == (2, second_id, "caller_hangup")
    assert part2["complete"] is True
    assert part2["seq"]["first"] <= part1["seq"]["last"] + 1  # no frame fell between the parts
    # Together the parts hold the whole caller signal: part 1 from its start, part 2 up to its end, and
    # part 2 begins at or before the sample after part 1's last one (parts may overlap, never gap).
    n1 = part1["counts"]["caller_audio_frames"] * FRAME
    n2 = part2["counts"]["caller_audio_frames"] * FRAME
    np.testing.assert_array_equal(_caller(tmp_path / "archive" / "moved-1", n1), saw(0, n1))
    np.testing.assert_array_equal(
        _caller(tmp_path / "archive" / "moved-1.part2", n2), saw(feeder.pos - n2, n2)
    )
    assert feeder.pos - n2 <= n1
    out = io.StringIO()
    assert sessions_show(LocalArchive(tmp_path / "archive"), "moved-1", out) == 0
    text = out.getvalue()
    assert "Session moved-1" in text and "(complete)" in text and "Parts (2, one session clock)" in text
    assert f"part 1  recorder {first_id}" in text and f"part 2  recorder {second_id}" in text
    out = io.StringIO()
    assert sessions_list(LocalArchive(tmp_path / "archive"), out) == 0
    assert "caller_hangup [2 parts]" in out.getvalue() and "1 session(s)" in out.getvalue()
