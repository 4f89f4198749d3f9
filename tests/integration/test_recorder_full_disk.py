"""A full spool disk (a real 4 MiB tmpfs, filled up): the link hears ``RecordAck.error``, tells the
session (``on_error``), keeps its un-acked frames; the recorder keeps what it has and deletes nothing;
when space returns, ingest resumes and the archive is complete — or says ``complete: false`` and counts
what the link had to drop. Needs root for ``mount -t tmpfs`` (skipped otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtvoice.bridge.recorder_link import RECORDING_FAILED, RecorderLink
from rtvoice.recorder.server import RecorderConfig, RecorderServer
from rtvoice.recorder.stores import LocalStore
from rtvoice.v1 import frames_pb2 as pb
from tests.support.recorder import FRAME, assert_caller_signal, load_archive, record_start, saw, wait_for

_LEFT_FREE = 300 * 1024


@pytest.fixture
def small_spool(tmp_path: Path) -> Iterator[Path]:
    spool = tmp_path / "spool"
    spool.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(spool)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield spool
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)


def _fill(spool: Path) -> Path:
    """Leave about 300 KiB free on the spool's file system; returns the filler file."""
    st = os.statvfs(spool)
    filler = spool / "filler.bin"  # not a valid session folder name at the spool root: never scanned
    with open(filler, "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize - _LEFT_FREE))
    return filler


def _fill_up(path: Path) -> None:
    """Write to ``path`` until the file system is full (ENOSPC)."""
    with open(path, "ab", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)


async def _feed(link: RecorderLink, start: int, frames: int) -> int:
    """Caller audio (a known signal) at 4x real time; returns the next sample position."""
    pos = start
    for _ in range(frames):
        link.record_client(pb.ClientFrame(audio=pb.AudioFrame(data=saw(pos, FRAME).tobytes())))
        pos += FRAME
        await asyncio.sleep(0.005)
    return pos


@contextlib.asynccontextmanager
async def _recorder(tmp_path: Path, spool: Path):  # type: ignore[no-untyped-def]
    cfg = RecorderConfig(spool_dir=spool, store=LocalStore(tmp_path / "archive"), resume_grace_s=30)
    server = RecorderServer(cfg)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace_s=0)


def _spool_bytes(entry: Path) -> int:
    return sum(p.stat().st_size for p in entry.iterdir() if p.is_file())


async def test_full_spool_is_reported_and_recovers_without_loss(tmp_path: Path, small_spool: Path) -> None:
    errors: list[pb.ErrorFrame] = []
    async with _recorder(tmp_path, small_spool) as server:
        filler = _fill(small_spool)
        link = RecorderLink(f"127.0.0.1:{server.port}", record_start("full-1"),
                            clock_t0_ns=time.monotonic_ns(), on_error=errors.append)  # fmt: skip
        link.open()
        pos = await _feed(link, 0, 700)  # 700 x 640 B > 300 KiB: the spool fills up on the way
        await wait_for(lambda: bool(errors), timeout_s=20)
        err = errors[0]
        assert err.kind == pb.ERROR_KIND_RECORDING and err.code == RECORDING_FAILED
        assert "spool_full" in err.message and err.retryable and not err.fatal
        assert link.error is not None and server.service.write_failures >= 1
        entry = small_spool / "full-1"
        held = _spool_bytes(entry)
        assert held > 100_000 and (entry / "caller.pcm").exists()  # kept, not deleted
        durable_while_full = link.durable_seq
        filler.unlink()  # space returns
        await wait_for(lambda: link.error is None and link.durable_seq > durable_while_full, timeout_s=20)
        pos = await _feed(link, pos, 100)
        uri = await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=20)
    assert uri is not None and len(errors) == 1 and link.frames_dropped == 0
    arc = load_archive(tmp_path / "archive" / "full-1")
    m = arc["manifest"]
    assert m["complete"] is True and not any(m["missing"].values())
    assert m["counts"]["write_failures"] >= 1
    assert_caller_signal(arc["audio"][:, 0], pos)  # every sample, once


async def test_frames_the_link_had_to_drop_make_the_archive_incomplete(
    tmp_path: Path, small_spool: Path
) -> None:
    errors: list[pb.ErrorFrame] = []
    async with _recorder(tmp_path, small_spool) as server:
        filler = _fill(small_spool)
        link = RecorderLink(f"127.0.0.1:{server.port}", record_start("full-2"),
                            clock_t0_ns=time.monotonic_ns(), on_error=errors.append,
                            max_unacked=150, max_pending=50)  # fmt: skip
        link.open()
        await _feed(link, 0, 700)
        await wait_for(lambda: link.caller_audio_frames_dropped > 0, timeout_s=20)
        assert errors and (small_spool / "full-2" / "caller.pcm").exists()
        filler.unlink()
        uri = await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=20)
    assert uri is not None
    m = load_archive(tmp_path / "archive" / "full-2")["manifest"]
    assert m["complete"] is False and m["end_reason"] == "caller_hangup"
    assert m["missing"]["caller_audio_frames_dropped_bridge"] == link.caller_audio_frames_dropped > 0
    assert m["counts"]["caller_audio_frames"] + link.caller_audio_frames_dropped == 700


async def test_disk_full_at_finalize_and_at_session_start_is_retried(
    tmp_path: Path, small_spool: Path
) -> None:
    errors: list[pb.ErrorFrame] = []
    async with _recorder(tmp_path, small_spool) as server:
        # A session whose audio fits in the spool but whose archive (the WAV) does not.
        link = RecorderLink(f"127.0.0.1:{server.port}", record_start("full-3"),
                            clock_t0_ns=time.monotonic_ns(), on_error=errors.append)  # fmt: skip
        link.open()
        pos = await _feed(link, 0, 150)
        await wait_for(lambda: link.durable_seq >= 150)
        st = os.statvfs(small_spool)
        filler = small_spool / "filler.bin"
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 64 * 1024))
        closing = asyncio.create_task(
            link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=30)
        )
        await wait_for(lambda: bool(errors), timeout_s=20)
        assert "spool_full" in errors[0].message
        assert (
            not (tmp_path / "archive" / "full-3").exists()
            and (small_spool / "full-3" / "caller.pcm").exists()
        )
        # A new session while the disk is full: refused with an error ack, created once space returns.
        late: list[pb.ErrorFrame] = []
        other = RecorderLink(f"127.0.0.1:{server.port}", record_start("full-4"),
                             clock_t0_ns=time.monotonic_ns(), on_error=late.append)  # fmt: skip
        other.open()
        _fill_up(small_spool / "filler2.bin")  # now not even start.pb fits
        other.record_client(pb.ClientFrame(audio=pb.AudioFrame(data=saw(0, FRAME).tobytes())))
        await wait_for(lambda: bool(late), timeout_s=20)
        assert "spool_full" in late[0].message
        filler.unlink()
        (small_spool / "filler2.bin").unlink()
        uri = await closing
        assert uri is not None and uri.endswith("/archive/full-3")
        assert await other.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=20) is not None
    m = load_archive(tmp_path / "archive" / "full-3")["manifest"]
    assert m["complete"] is True
    assert_caller_signal(load_archive(tmp_path / "archive" / "full-3")["audio"][:, 0], pos)
    assert load_archive(tmp_path / "archive" / "full-4")["manifest"]["counts"]["caller_audio_frames"] == 1


@pytest.mark.parametrize("required", [False, True])
async def test_caller_hears_of_a_full_spool_through_the_bridge(
    tmp_path: Path, small_spool: Path, required: bool
) -> None:
    """Bridge + fake OpenAI + recorder on a full tmpfs: the caller gets ``recording_failed``; the call goes
    on (default) or ends with ``recording_failed`` (``recording.required``)."""
    from rtvoice.core.end_reason import wire_name
    from tests.support.bridge import ConverseClient, openai_settings, running_bridge, utterance
    from tests.support.fake_openai import VALID_KEY, FakeOpenAI, Scenario

    settings = openai_settings(recording={"enabled": True, "required": required})
    async with _recorder(tmp_path, small_spool) as server, FakeOpenAI(Scenario()) as fake:
        _fill_up(small_spool / "filler.bin")  # nothing of this session can be stored
        async with running_bridge(
            settings, provider_url=fake.url, api_key=VALID_KEY, recorder=f"127.0.0.1:{server.port}"
        ) as bridge:
            async with ConverseClient(bridge.target) as call:
                assert (await call.start()).WhichOneof("frame") == "ready"
                await call.send_audio(utterance())
                err = await call.wait_for(
                    lambda f: f.WhichOneof("frame") == "error" and f.error.code == "recording_failed",
                    timeout_s=20,
                )
                assert err.error.kind == pb.ERROR_KIND_RECORDING and err.error.fatal is required
                if required:
                    end = await call.wait_for("end", timeout_s=20)
                    assert wire_name(end.end.reason) == "recording_failed"
                else:
                    done = await call.wait_for("response_done", timeout_s=20)  # the call went on
                    assert done.response_done.status == "completed"
                    assert "end" not in call.kinds()
                    await call.send(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
                    await call.wait_for("end", timeout_s=20)
        (small_spool / "filler.bin").unlink()  # space returns: the link still holds every frame
        await wait_for(lambda: any((tmp_path / "archive").rglob("manifest.json")), timeout_s=30)
    manifest = json.loads(next((tmp_path / "archive").rglob("manifest.json")).read_text())
    # Nothing was lost: the link resent its un-acked frames once the recorder could store them again.
    assert manifest["complete"] is True and not any(manifest["missing"].values())
    if not required:  # (a required recording ended the call before the bridge read the rest)
        assert manifest["counts"]["caller_audio_frames"] == call._seq  # every caller frame sent
