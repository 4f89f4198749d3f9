"""Bridge-side client of ``Recorder.Record`` (proto/rtvoice/v1/recorder.proto) for one session.

The voice loop calls ``record_client`` / ``record_server`` / ``record_span``: each stamps the frame with
the session clock (``t_us``, µs since ``clock_t0_ns``) and appends it to a bounded in-memory queue; it
never blocks and never raises. A background task sends the queue over one bidi stream in batches (one
gRPC message per ~40 ms), numbering frames (``seq``) as it sends them and keeping every sent frame until
the recorder acks it as durable (``RecordAck.durable_seq``: written and fdatasync'ed).

- Stream breaks (recorder restarted, network): the task re-opens it with backoff
  (:data:`LINK_BACKOFF`), sends ``RecordStart`` with ``resumed=true`` and this link's ``LinkStats``, and
  resends the un-acked frames with their original ``seq``; the recorder ignores what it already has.
- ``RecordAck.error`` (the recorder's spool is full or failing): sending pauses, and after a backoff the
  whole un-acked tail is resent on the same stream; the recorder stores it once it can.
- Several recorders (``dns:///name:port`` or a comma list, see rtvoice.recorder.targets): the session
  sticks to the instance that acked it (``RecordAck.recorder_id``; a resume names it in gRPC metadata
  so no other instance takes the session). When that instance stays unreachable longer than
  ``resume_grace_s`` and another one answers, the link starts a new archive part there
  (``RecordStart.part = n + 1``, ``resumed=false``) with the un-acked tail.

Recording problems reach the session through ``on_error`` (an ``ErrorFrame`` of kind
``ERROR_KIND_RECORDING``, code ``recording_failed``, once per episode) and :attr:`RecorderLink.error`.

Drop policy: nothing is dropped while the recorder is merely slow, until ``max_unacked`` frames await
their ack *and* ``max_pending`` more are queued. Then spans go first (``spans_dropped``); other frames are
dropped only when no queued span is left to evict, counted per kind (caller audio, agent audio, other)
and sent in ``LinkStats``, so the archive says ``complete: false``. Call the ``record_*`` methods from the
event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from rtvoice.core.internal_auth import InternalCredentials, call_metadata
from rtvoice.core.retry import Backoff
from rtvoice.core.spans import Span
from rtvoice.recorder.link_queue import LinkQueue
from rtvoice.recorder.targets import EXPECTED_RECORDER_METADATA, RecorderTargets
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc

log = logging.getLogger(__name__)
#: How long queued frames gather before one batch is written: recording latency, never voice latency.
#: Each gRPC message costs ~150-180 us of CPU at each end, and the recorder fdatasyncs once per batch, so
#: 500 ms (2 messages a second per session instead of 25 at 40 ms) removes most of the recording copy's CPU
#: (see docs/performance.md); the un-acked tail stays in the link until the recorder confirms it.
_BATCH_INTERVAL_S = 0.5
#: Frames per message when resending a tail (keeps messages well under the recorder's 16 MiB limit).
_RESEND_CHUNK = 256
_START_SEQ = 1
#: Reconnects and resends after an error ack.
LINK_BACKOFF = Backoff(initial_s=0.05, max_s=2.0)
RECORDING_FAILED = "recording_failed"
_BACKGROUND: set[asyncio.Task[None]] = set()


def recording_failed(message: str) -> pb.ErrorFrame:
    """The caller-facing, non-fatal ``ErrorFrame`` for a recording problem (code ``recording_failed``)."""
    return pb.ErrorFrame(
        kind=pb.ERROR_KIND_RECORDING, code=RECORDING_FAILED, message=message, retryable=True, fatal=False
    )


class _NotHolder(Exception):
    """The instance refused a resume: it does not hold this session."""


class RecorderLink:
    """Bridge-side client of Recorder.Record for one session; never blocks the voice loop.

    ``target`` is ``host:port``, a comma list, ``dns:///name:port``, or None to disable recording (every
    call is then a cheap no-op and :meth:`close` returns None). ``clock_t0_ns`` is
    ``time.monotonic_ns()`` at session start. ``max_pending`` bounds the frames queued but not sent;
    ``max_unacked`` the frames sent but not yet durable; ``reconnect=False`` gives up on the first broken
    stream. ``on_error`` is called (on the loop, never raising into the link) with a
    ``recording_failed`` ErrorFrame when the recorder reports an error or stays unreachable for
    ``unreachable_error_s``. Raises ``RecorderTargetError`` for a malformed target.

    Readable state: ``durable_seq`` (highest seq the recorder confirmed as written and fdatasync'ed),
    ``recorder_id`` (the instance holding the session, from its acks), ``part`` (archive part),
    ``error`` (the current recording problem, None when healthy), ``connects`` (streams opened).
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
        resume_grace_s: float = 30.0,
        unreachable_error_s: float = 2.0,
        on_error: Callable[[pb.ErrorFrame], None] | None = None,
        backoff: Backoff = LINK_BACKOFF,
        stall_s: float = 30.0,
        credentials: InternalCredentials | None = None,
    ) -> None:
        self._target = target
        self._start = start
        self.credentials = credentials  # the internal token, re-read on each (re)connect
        self.queue = LinkQueue(clock_t0_ns, max_pending)
        self.on_error = on_error
        self._stall_s = stall_s
        self.durable_seq = 0
        self.recorder_id = ""
        self.part = max(1, start.part)
        self.error: pb.ErrorFrame | None = None
        self.connects = 0
        self.archive_uri: str | None = None
        self.finalized = asyncio.Event()
        self.wake = asyncio.Event()
        #: Set when the sender should stop gathering and write now: at close, or when the frames waiting
        #: reach ``flush_at`` (a quarter of ``max_pending``), so gathering never makes the queue drop.
        self.send_now = asyncio.Event()
        self.flush_at = max(1, min(_RESEND_CHUNK, max_pending // 4))
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._sender: _Sender | None = None
        if target is not None:
            targets = RecorderTargets(target)
            self._sender = _Sender(
                self, targets, max_unacked, reconnect, resume_grace_s, unreachable_error_s, backoff
            )

    # ------------------------------------------------------------------------------ public API

    @property
    def spans_dropped(self) -> int:
        """Spans dropped because the queue was full (cumulative)."""
        return self.queue.drops["span"]

    @property
    def frames_dropped(self) -> int:
        """Non-span frames dropped because the queue was full of frames (cumulative)."""
        return self.queue.frames_dropped

    @property
    def caller_audio_frames_dropped(self) -> int:
        """Caller audio frames among :attr:`frames_dropped`."""
        return self.queue.drops["caller_audio"]

    @property
    def enabled(self) -> bool:
        """False when recording is off (``target`` None)."""
        return self._target is not None

    @property
    def session_id(self) -> str:
        """The recorded session's id."""
        return self._start.session.session_id

    def open(self) -> None:
        """Start the background sender task (needs a running loop); returns at once."""
        if self._sender is None or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._sender.run(self._start), name="recorder-link"
        )

    def _queued(self) -> None:
        self.wake.set()
        q = self.queue
        if len(q.frames) + len(q.spans) >= self.flush_at:
            self.send_now.set()

    def record_client(self, frame: pb.ClientFrame, t_us: int | None = None) -> None:
        """Queue what the caller sent, stamped ``t_us`` (caller audio: its sample position on the session
        clock) or now; never blocks or raises."""
        if self._target is not None and self.queue.put(
            "caller_audio" if frame.HasField("audio") else "other", t_us, client=frame
        ):
            self._queued()

    def record_server(self, frame: pb.ServerFrame) -> None:
        """Queue what the bridge sent to the caller (stamped now); never blocks or raises."""
        if self._target is not None and self.queue.put(
            "agent_audio" if frame.HasField("audio") else "other", server=frame
        ):
            self._queued()

    def record_span(self, span: Span) -> None:
        """Queue a span; spans are the first to be dropped when the queue is full."""
        if self._target is None:
            return
        try:
            proto = span.to_proto()
        except Exception:  # a span with a value protobuf refuses must not hurt the session
            log.debug("span %s not recordable", span.name, exc_info=True)
            self.queue.drops["span"] += 1
            return
        if self.queue.put("span", span=proto):
            self._queued()

    async def close(self, end: pb.EndFrame, timeout_s: float = 5.0) -> str | None:
        """Send ``LinkStats`` and ``end``; wait (at most ``timeout_s``) for the finalized ack.

        Returns the archive URI, or None when it is not finalized yet. A link that reached its recorder
        then keeps sending in the background while the recorder makes progress (no ack for ``stall_s``
        ends it), so a slow recorder still gets the whole session; :func:`drain_links` waits for those.
        """
        if self._sender is None or self._closing:
            return self.archive_uri
        q = self.queue
        q.frames.append(q.stamp(link_stats=q.stats()))  # never dropped: the counters must land
        q.frames.append(q.stamp(end=end))
        q.closed = self._closing = True
        self.wake.set()
        self.send_now.set()  # the sender stops gathering: the end goes now
        if self._task is None:
            self.open()
        assert self._task is not None
        if await self._wait_final(timeout_s):
            await self._shutdown()
        elif self.connects and self._sender.reconnect and not self._task.done():
            log.info("session %s: not finalized after %.1f s (%d frames not durable); finishing in the "
                     "background", self.session_id, timeout_s, q.backlog)  # fmt: skip
            finisher = asyncio.get_running_loop().create_task(self._finish_late())
            _BACKGROUND.add(finisher)
            finisher.add_done_callback(_BACKGROUND.discard)
        else:
            log.warning("recorder did not finalize session %s within %.1f s (%d frames not durable)",
                        self.session_id, timeout_s, q.backlog)  # fmt: skip
            await self._shutdown()
        return self.archive_uri

    def report(self, message: str) -> None:
        """Tell the session once per episode (cleared when acks advance again without error)."""
        if self.error is not None:
            return
        self.error = recording_failed(message)
        log.warning("session %s: recording problem: %s", self.session_id, message)
        if self.on_error is not None:
            try:
                self.on_error(self.error)
            except Exception:
                log.exception("recorder link on_error callback failed")

    # ------------------------------------------------------------------------------ closing

    async def _wait_final(self, timeout_s: float) -> bool:
        assert self._task is not None
        finalized = asyncio.get_running_loop().create_task(self.finalized.wait())
        try:
            # Ends early when the sender gave up (reconnect=False and the stream broke).
            await asyncio.wait(
                [finalized, self._task], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            finalized.cancel()
        return self.finalized.is_set()

    async def _finish_late(self) -> None:
        try:
            while not self.finalized.is_set():
                before = self.durable_seq
                if await self._wait_final(self._stall_s):
                    break
                assert self._task is not None
                if self.durable_seq == before or self._task.done():
                    log.warning("session %s: recorder made no progress for %.0f s; %d frames not durable",
                                self.session_id, self._stall_s, self.queue.backlog)  # fmt: skip
                    break
            if self.archive_uri:
                log.info("session %s: archive finalized late: %s", self.session_id, self.archive_uri)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._sender is not None:
            await self._sender.close_channels()


class _Sender:
    """The link's background task: streams to the recorder instance holding the session (see the
    module docstring); writes what it learns (acks, recorder id, part, errors) back to ``link``."""

    def __init__(
        self,
        link: RecorderLink,
        targets: RecorderTargets,
        max_unacked: int,
        reconnect: bool,
        grace_s: float,
        unreachable_s: float,
        backoff: Backoff,
    ) -> None:
        self.link = link
        self.queue = link.queue
        self.targets = targets
        self.max_unacked = max_unacked
        self.reconnect = reconnect
        self.grace_s = grace_s
        self.unreachable_s = unreachable_s
        self.backoff = backoff
        self.rewind_backoff = backoff.start()
        self.rewind_at: float | None = None
        self.started_once = False
        self.established = False
        self.holder_addr = ""
        self.channels: dict[str, grpc.aio.Channel] = {}

    async def run(self, start: rpb.RecordStart) -> None:
        """Stream until the archive is finalized (reconnecting with backoff unless ``reconnect`` is off)."""
        backoff = self.backoff.start()
        down_since: float | None = None
        while True:
            for addr in await self._candidates(down_since):
                self.established = False
                try:
                    if await self._stream(addr, start):
                        return
                except asyncio.CancelledError:
                    raise
                except _NotHolder:
                    continue
                except Exception as exc:
                    log.info("recorder stream to %s broke: %s", addr, _short(exc))
                    await self._drop_channel(addr)
                if self.established:
                    break
            if self.established:
                backoff.reset()
                down_since = None
            else:
                down_since = down_since if down_since is not None else time.monotonic()
                if time.monotonic() - down_since >= self.unreachable_s:
                    self.link.report(f"no recorder reachable at {self.targets.spec}")
            if not self.reconnect:
                log.warning("recorder link gave up (reconnect disabled)")
                return
            await backoff.sleep()

    async def close_channels(self) -> None:
        """Close every per-instance channel."""
        for addr in list(self.channels):
            await self._drop_channel(addr)

    async def _candidates(self, down_since: float | None) -> list[str]:
        """Addresses to try, in order: the instance holding the session first; maybe a new part."""
        link = self.link
        addrs = self.targets.ranked(await self.targets.addresses(), link.session_id)
        if self.holder_addr in addrs:
            addrs.remove(self.holder_addr)
            addrs.insert(0, self.holder_addr)
        gone = down_since is not None and time.monotonic() - down_since > self.grace_s
        if gone and link.recorder_id and self.targets.several and addrs:
            log.warning("session %s: recorder %s gone for over %.0f s; starting archive part %d elsewhere",
                        link.session_id, link.recorder_id, self.grace_s, link.part + 1)  # fmt: skip
            link.part += 1
            link.recorder_id = ""
            self.holder_addr = ""
            self.started_once = False
        return addrs

    def _channel(self, addr: str) -> grpc.aio.Channel:
        channel = self.channels.get(addr)
        if channel is None:
            channel = self.channels[addr] = grpc.aio.insecure_channel(addr)
        return channel

    async def _drop_channel(self, addr: str) -> None:
        channel = self.channels.pop(addr, None)
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _stream(self, addr: str, base: rpb.RecordStart) -> bool:
        """One stream: start, resend the un-acked tail, then send as frames come. True once finalized."""
        link = self.link
        metadata = call_metadata(link.credentials) or ()
        if self.started_once and link.recorder_id:
            metadata += ((EXPECTED_RECORDER_METADATA, link.recorder_id),)
        call = recorder_pb2_grpc.RecorderStub(self._channel(addr)).Record(metadata=metadata)
        start = rpb.RecordStart()
        start.CopyFrom(base)
        start.resumed = self.started_once
        start.spans_dropped = link.spans_dropped
        start.part = link.part
        if self.started_once:
            self.queue.stats_first()  # the counters on every resume
        self.rewind_at = None  # a new stream resends the tail anyway
        acks = asyncio.get_running_loop().create_task(self._read_acks(call, addr))
        acks.add_done_callback(lambda _: link.wake.set())
        try:
            first = rpb.RecordFrame(seq=_START_SEQ, t_us=0, start=start)
            await call.write(rpb.RecordBatch(frames=[first]))
            await self._write_chunks(call, list(self.queue.unacked))
            self.started_once = True
            link.connects += 1
            await self._send_loop(call, acks)
            return acks.result()
        except Exception as exc:
            failure = acks.exception() if acks.done() and not acks.cancelled() else exc
            if isinstance(failure, grpc.aio.AioRpcError):
                if failure.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    raise _NotHolder() from failure
                raise failure from None
            raise
        finally:
            acks.cancel()
            call.cancel()

    async def _write_chunks(self, call: Any, frames: list[rpb.RecordFrame]) -> None:
        for i in range(0, len(frames), _RESEND_CHUNK):
            await call.write(rpb.RecordBatch(frames=frames[i : i + _RESEND_CHUNK]))

    async def _send_loop(self, call: Any, acks: asyncio.Task[bool]) -> None:
        loop = asyncio.get_running_loop()
        wake = self.link.wake
        while not acks.done():
            wake.clear()
            if self.rewind_at is not None:  # the recorder could not store: pause, then resend the tail
                wait = self.rewind_at - loop.time()
                if wait > 0:
                    await asyncio.wait([acks], timeout=wait)
                    continue
                self.rewind_at = None
                await self._write_chunks(call, list(self.queue.unacked))
            batch = self.queue.take(self.max_unacked)
            if batch:
                await call.write(rpb.RecordBatch(frames=batch))
            if not acks.done():
                await wake.wait()
                # Let frames gather: one gRPC message per ~batch interval instead of per frame
                # (the per-message cost dominates the bridge's recording CPU); `end` goes at once.
                if not self.queue.closed and self.rewind_at is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.link.send_now.wait(), _BATCH_INTERVAL_S)
                    if not self.queue.closed:
                        self.link.send_now.clear()
        acks.result()  # raise the stream's error, if any

    async def _read_acks(self, call: Any, addr: str) -> bool:
        link = self.link
        async for ack in call:
            if not self.established:
                self.established = True
                self.holder_addr = addr
            if ack.recorder_id:
                link.recorder_id = ack.recorder_id
            if ack.HasField("error"):
                link.report(f"recorder {ack.recorder_id or '?'}: {ack.error.code}: {ack.error.message}")
                delay = self.rewind_backoff.next_delay_s() or self.backoff.max_s
                self.rewind_at = asyncio.get_running_loop().time() + delay
                link.wake.set()
            elif ack.durable_seq > link.durable_seq and link.error is not None:
                log.info(
                    "session %s: recording works again (durable seq %d)", link.session_id, ack.durable_seq
                )
                link.error = None
                self.rewind_backoff.reset()
            if ack.durable_seq > link.durable_seq:
                link.durable_seq = ack.durable_seq
                self.queue.acked(ack.durable_seq)
                link.wake.set()  # room in the un-acked window: the sender may go on
            if ack.finalized:
                link.archive_uri = ack.archive_uri or None
                link.finalized.set()
                return True
        return False


async def drain_links(timeout_s: float) -> bool:
    """Wait for links still finishing their archives after ``close`` (bridge shutdown); False on timeout."""
    pending = [t for t in _BACKGROUND if not t.done()]
    if not pending:
        return True
    _, still = await asyncio.wait(pending, timeout=timeout_s)
    return not still


def _short(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)
