"""RecorderLink: disabled mode, the drop policy (spans first), and its counters reaching the manifest."""

from __future__ import annotations

import time
from pathlib import Path

from rtvoice.bridge.recorder_link import RecorderLink
from rtvoice.core.spans import Span
from rtvoice.v1 import frames_pb2 as pb
from tests.support.recorder import TRACE_ID, load_archive, record_start, running_recorder, tone
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
    assert await link.close(pb.EndFrame(reason="caller_hangup")) is None
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
    assert await link.close(pb.EndFrame(reason="caller_hangup"), timeout_s=0.3) is None


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
        uri = await link.close(pb.EndFrame(reason="caller_hangup"), timeout_s=10)
    assert uri is not None and link.spans_dropped == 60 and link.frames_dropped == 10
    counts = load_archive(tmp_path / "archive" / "counted")["manifest"]["counts"]
    assert counts["spans_dropped_bridge"] == 60 and counts["spans_dropped"] == 60
    assert counts["frames_dropped_bridge"] == 10 and counts["caller_audio_frames"] == 50
