"""RecorderLink: disabled mode, the drop policy (spans first), its counters reaching the manifest, finishing
late for a slow recorder, reporting an unreachable one, and recorder targets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rtvoice.bridge.recorder_link import RECORDING_FAILED, RecorderLink, drain_links
from rtvoice.core.spans import Span
from rtvoice.recorder.targets import RecorderTargetError, RecorderTargets
from rtvoice.v1 import frames_pb2 as pb
from tests.support.recorder import TRACE_ID, load_archive, record_start, running_recorder, tone, wait_for
from tests.support.s3 import free_port


def _span(i: int) -> Span:
    now = time.time_ns()
    return Span(trace_id=TRACE_ID, name=f"span-{i}", start_unix_ns=now, end_unix_ns=now)


def _audio(ms: int = 20) -> pb.ClientFrame:
    return pb.ClientFrame(audio=pb.AudioFrame(data=tone(440, ms).tobytes()))


async def test_disabled_link_is_a_no_op() -> None:
    link = RecorderLink(None, record_start("off"), clock_t0_ns=time.monotonic_ns())
    link.open()
    link.record_client(_audio())
    link.record_server(pb.ServerFrame(clear_audio=pb.ClearAudio()))
    link.record_span(_span(1))
    assert await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)) is None
    assert link.spans_dropped == link.frames_dropped == 0 and not link.enabled


async def test_full_queue_drops_spans_first_then_frames() -> None:
    # Nothing listens on this port: the link queues, and close() gives up after its timeout.
    link = RecorderLink(f"127.0.0.1:{free_port()}", record_start("full"), clock_t0_ns=time.monotonic_ns(),
                        max_pending=10)  # fmt: skip
    link.open()
    for i in range(6):
        link.record_span(_span(i))
    for _ in range(8):
        link.record_client(_audio())  # 4 of them evict queued spans
    assert link.spans_dropped == 4 and link.frames_dropped == 0
    link.record_span(_span(99))  # the queue is full: a new span is dropped
    for _ in range(3):
        link.record_client(_audio())  # 2 more evict the last spans, then frames are dropped
    assert link.spans_dropped == 7 and link.frames_dropped == 1
    assert await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=0.3) is None


async def test_drop_counters_reach_the_manifest(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as server:
        link = RecorderLink(f"127.0.0.1:{server.port}", record_start("counted"),
                            clock_t0_ns=time.monotonic_ns(), max_pending=50)  # fmt: skip
        link.open()
        # One synchronous burst (the sender cannot run in between): 60 spans and 60 frames into 50 places.
        for i in range(60):
            link.record_span(_span(i))
        for _ in range(60):
            link.record_client(_audio())
        uri = await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=10)
    assert uri is not None and link.spans_dropped == 60 and link.frames_dropped == 10
    counts = load_archive(tmp_path / "archive" / "counted")["manifest"]["counts"]
    assert counts["spans_dropped_bridge"] == 60 and counts["spans_dropped"] == 60
    assert counts["frames_dropped_bridge"] == 10 and counts["caller_audio_frames"] == 50
    assert counts["caller_audio_frames_dropped_bridge"] == 10 and counts["frames_sent_bridge"] == 50
    m = load_archive(tmp_path / "archive" / "counted")["manifest"]
    assert m["complete"] is False and m["missing"]["caller_audio_frames_dropped_bridge"] == 10


async def test_a_slow_recorder_still_gets_the_whole_session_after_close(tmp_path: Path) -> None:
    # One sync per 1.5 s: the finalized ack cannot come within close()'s 0.1 s.
    async with running_recorder(tmp_path, sync_interval_s=1.5) as server:
        link = RecorderLink(
            f"127.0.0.1:{server.port}", record_start("slow-1"), clock_t0_ns=time.monotonic_ns()
        )
        link.open()
        for _ in range(100):
            link.record_client(_audio())
        await wait_for(lambda: link.durable_seq >= 1)
        assert await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=0.1) is None
        assert await drain_links(15)
    m = load_archive(tmp_path / "archive" / "slow-1")["manifest"]
    assert m["complete"] is True and m["counts"]["caller_audio_frames"] == 100


async def test_unreachable_recorder_is_reported_once() -> None:
    errors: list[pb.ErrorFrame] = []
    link = RecorderLink(f"127.0.0.1:{free_port()}", record_start("gone"), clock_t0_ns=time.monotonic_ns(),
                        unreachable_error_s=0.2, on_error=errors.append)  # fmt: skip
    link.open()
    link.record_client(_audio())
    await wait_for(lambda: bool(errors), timeout_s=10)
    assert errors[0].kind == pb.ERROR_KIND_RECORDING and errors[0].code == RECORDING_FAILED
    assert "no recorder reachable" in errors[0].message and not errors[0].fatal
    assert await link.close(pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP), timeout_s=0.3) is None
    assert len(errors) == 1


async def test_targets_lists_and_dns_names() -> None:
    port = free_port()
    assert await RecorderTargets(f"127.0.0.1:{port}").addresses() == [f"127.0.0.1:{port}"]
    listed = RecorderTargets("a:1, b:2 ,c:3")
    assert listed.several and await listed.addresses() == ["a:1", "b:2", "c:3"]
    dns = RecorderTargets(f"dns:///localhost:{port}")
    assert f"127.0.0.1:{port}" in await dns.addresses() and dns.several
    ranked = RecorderTargets.ranked(["a:1", "b:2", "c:3"], "s-1")
    assert ranked == RecorderTargets.ranked(["c:3", "b:2", "a:1"], "s-1")  # stable per session
    firsts = {RecorderTargets.ranked(["a:1", "b:2", "c:3"], f"s-{i}")[0] for i in range(30)}
    assert firsts == {"a:1", "b:2", "c:3"}  # sessions spread over the instances
    for bad in ("", "nohost", "dns:///name", "h:port"):
        with pytest.raises(RecorderTargetError):
            RecorderTargets(bad)
