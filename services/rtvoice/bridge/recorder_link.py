"""Bridge-side client of ``Recorder.Record`` (proto/rtvoice/v1/recorder.proto) for one session.

The voice loop calls ``record_client`` / ``record_server`` / ``record_span``: each stamps the frame with
the session clock (``t_us``, µs since ``clock_t0_ns``) and appends it to a bounded in-memory queue; it
never blocks and never raises. A background task sends the queue over one bidi stream, numbering frames
(``seq``) as it sends them and keeping every sent frame until the recorder acks it as durable
(``RecordAck.durable_seq``). When the stream breaks (recorder restarted, network), the task re-opens it
with backoff, sends ``RecordStart`` again with ``resumed=true`` and the current ``spans_dropped``, and
resends the un-acked frames with their original ``seq``: the recorder ignores what it already has, so a
recorder restart loses nothing and duplicates nothing.

When the queue is full, spans are dropped first (counted in ``spans_dropped``); audio and other frames
are dropped only when no queued span is left to evict (``frames_dropped``). While ``max_unacked`` frames
await their ack, sending pauses. Call the ``record_*`` methods from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import grpc

from rtvoice.core.spans import Span, new_span_id, now_ns
from rtvoice.recorder import LINK_STATS_SPAN
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc

log = logging.getLogger(__name__)
#: How long queued frames gather before one batch is written (recording latency, not voice latency).
_BATCH_INTERVAL_S = 0.04
_START_SEQ = 1
_BACKOFF_INITIAL_S = 0.05
_BACKOFF_MAX_S = 2.0


class RecorderLink:
    """Bridge-side client of Recorder.Record for one session; never blocks the voice loop.

    ``target`` is ``host:port`` of the recorder, or None to disable recording (every call is then a
    cheap no-op and :meth:`close` returns None). ``clock_t0_ns`` is ``time.monotonic_ns()`` at session
    start. ``max_pending`` bounds the frames queued but not yet sent; ``max_unacked`` the frames sent but
    not yet durable; ``reconnect=False`` gives up on the first broken stream.
    """

    def __init__(
        self,
        target: str | None,
        start: rpb.RecordStart,
        *,
        clock_t0_ns: int,
        max_pending: int = 4000,
        max_unacked: int = 6000,
        reconnect: bool = True,
    ) -> None:
        self._target = target
        self._start = start
        self._t0 = clock_t0_ns
        self._max_pending = max_pending
        self._max_unacked = max_unacked
        self._reconnect = reconnect
        self._frames: deque[rpb.RecordFrame] = deque()
        self._spans: deque[rpb.RecordFrame] = deque()
        self._unacked: deque[rpb.RecordFrame] = deque()
        self._next_seq = _START_SEQ + 1
        self._durable_seq = 0
        self._spans_dropped = 0
        self._frames_dropped = 0
        self._closing = False
        self._started_once = False
        self._archive_uri: str | None = None
        self._finalized = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connects = 0

    # ------------------------------------------------------------------------------ public API

    @property
    def spans_dropped(self) -> int:
        """Spans dropped because the queue was full (cumulative)."""
        return self._spans_dropped

    @property
    def frames_dropped(self) -> int:
        """Non-span frames dropped because the queue was full of frames (cumulative)."""
        return self._frames_dropped

    @property
    def durable_seq(self) -> int:
        """Highest seq the recorder confirmed as written to its spool."""
        return self._durable_seq

    @property
    def enabled(self) -> bool:
        """False when recording is off (``target`` None)."""
        return self._target is not None

    def open(self) -> None:
        """Start the background sender task (needs a running loop); returns at once."""
        if self._target is None or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder-link")

    def record_client(self, frame: pb.ClientFrame) -> None:
        """Queue what the caller sent (stamped now); never blocks or raises."""
        if self._target is not None:
            self._enqueue(client=frame)

    def record_server(self, frame: pb.ServerFrame) -> None:
        """Queue what the bridge sent to the caller (stamped now); never blocks or raises."""
        if self._target is not None:
            self._enqueue(server=frame)

    def record_span(self, span: Span) -> None:
        """Queue a span; spans are the first to be dropped when the queue is full."""
        if self._target is not None:
            try:
                self._enqueue(span=span.to_proto())
            except Exception:  # a span with a value protobuf refuses must not hurt the session
                log.debug("span %s not recordable", span.name, exc_info=True)
                self._spans_dropped += 1

    async def close(self, end: pb.EndFrame, timeout_s: float = 5.0) -> str | None:
        """Send ``end``, wait (at most ``timeout_s``) for the finalized ack; the archive URI or None."""
        if self._target is None or self._closing:
            return self._archive_uri
        stats = Span(
            trace_id=self._start.session.metadata.get("trace_id", "0" * 32),
            name=LINK_STATS_SPAN,
            start_unix_ns=now_ns(),
            end_unix_ns=now_ns(),
            span_id=new_span_id(),
            attributes={"spans_dropped": self._spans_dropped, "frames_dropped": self._frames_dropped},
        )
        self._frames.append(self._stamp(span=stats.to_proto()))  # never dropped: the counters must land
        self._frames.append(self._stamp(end=end))
        self._closing = True
        self._wake.set()
        if self._task is None:
            self.open()
        finalized = asyncio.get_running_loop().create_task(self._finalized.wait())
        assert self._task is not None
        try:
            # Ends early when the sender gave up (reconnect=False and the stream broke).
            await asyncio.wait(
                [finalized, self._task], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not self._finalized.is_set():
                log.warning(
                    "recorder did not finalize session %s within %.1f s (%d frames not durable)",
                    self._start.session.session_id,
                    timeout_s,
                    len(self._unacked) + len(self._frames) + len(self._spans),
                )
        finally:
            finalized.cancel()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        return self._archive_uri

    # ------------------------------------------------------------------------------ queueing

    def _stamp(
        self,
        *,
        client: pb.ClientFrame | None = None,
        server: pb.ServerFrame | None = None,
        span: rpb.Span | None = None,
        end: pb.EndFrame | None = None,
    ) -> rpb.RecordFrame:
        t_us = (time.monotonic_ns() - self._t0) // 1000
        return rpb.RecordFrame(t_us=t_us, client=client, server=server, span=span, end=end)

    def _enqueue(
        self,
        *,
        client: pb.ClientFrame | None = None,
        server: pb.ServerFrame | None = None,
        span: rpb.Span | None = None,
    ) -> None:
        if self._closing:
            return
        try:
            is_span = span is not None
            if len(self._frames) + len(self._spans) >= self._max_pending:
                if is_span:
                    self._spans_dropped += 1
                    return
                if not self._spans:
                    self._frames_dropped += 1
                    return
                self._spans.popleft()
                self._spans_dropped += 1
            frame = self._stamp(client=client, server=server, span=span)
            (self._spans if is_span else self._frames).append(frame)
            self._wake.set()
        except Exception:  # never let recording break the voice loop
            log.debug("frame not recordable", exc_info=True)
            self._frames_dropped += 1

    def _pop_next(self) -> rpb.RecordFrame | None:
        """The oldest queued frame (frames and spans merged by their session time)."""
        if self._frames and (not self._spans or self._frames[0].t_us <= self._spans[0].t_us):
            return self._frames.popleft()
        if self._spans:
            return self._spans.popleft()
        return None

    # ------------------------------------------------------------------------------ sending

    async def _run(self) -> None:
        delay = _BACKOFF_INITIAL_S
        while True:
            try:
                if await self._stream():
                    return
                delay = _BACKOFF_INITIAL_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("recorder stream to %s broke: %s", self._target, _short(exc))
            if not self._reconnect:
                log.warning("recorder link gave up (reconnect disabled)")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)

    async def _stream(self) -> bool:
        """One stream: start, resend the un-acked tail, then send as frames come. True once finalized."""
        assert self._target is not None
        async with grpc.aio.insecure_channel(self._target) as channel:
            call = recorder_pb2_grpc.RecorderStub(channel).Record()
            start = rpb.RecordStart()
            start.CopyFrom(self._start)
            start.resumed = self._started_once
            start.spans_dropped = self._spans_dropped
            first = [rpb.RecordFrame(seq=_START_SEQ, t_us=0, start=start), *self._unacked]
            await call.write(rpb.RecordBatch(frames=first))  # start + the resent un-acked tail
            self._started_once = True
            self.connects += 1
            acks = asyncio.get_running_loop().create_task(self._read_acks(call))
            acks.add_done_callback(lambda _: self._wake.set())
            try:
                while not acks.done():
                    self._wake.clear()
                    batch: list[rpb.RecordFrame] = []
                    while len(self._unacked) < self._max_unacked:
                        frame = self._pop_next()
                        if frame is None:
                            break
                        frame.seq = self._next_seq
                        self._next_seq += 1
                        self._unacked.append(frame)
                        batch.append(frame)
                    if batch:
                        await call.write(rpb.RecordBatch(frames=batch))
                    if not acks.done():
                        await self._wake.wait()
                        # Let frames gather: one gRPC message per ~batch interval instead of per frame
                        # (the per-message cost dominates the bridge's recording CPU); `end` goes at once.
                        if not self._closing:
                            await asyncio.sleep(_BATCH_INTERVAL_S)
                return acks.result()
            finally:
                acks.cancel()
                call.cancel()

    async def _read_acks(self, call: grpc.aio.StreamStreamCall[rpb.RecordFrame, rpb.RecordAck]) -> bool:
        async for ack in call:
            if ack.durable_seq > self._durable_seq:
                self._durable_seq = ack.durable_seq
                while self._unacked and self._unacked[0].seq <= ack.durable_seq:
                    self._unacked.popleft()
                self._wake.set()  # room in the un-acked window: the sender may go on
            if ack.finalized:
                self._archive_uri = ack.archive_uri or None
                self._finalized.set()
                return True
        return False


def _short(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)
