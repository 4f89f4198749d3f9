"""One ``Record`` stream feeding one live session: apply batches, fdatasync, ack, and survive write errors.

The event loop only moves messages: a *reader* task collects the frames of arriving ``RecordBatch``
messages, and a *worker* task hands everything collected so far to one blocking *step* on the spool
thread pool — apply the frames to the spool files, then :meth:`SessionRecorder.sync` (fdatasync of the
spool files and a checkpoint record) — and sends ``RecordAck{durable_seq}`` when it returns. Steps of one
session run one at a time, so the recorder's state is only ever touched by one thread, and batches that
arrive during a step are covered by the next one: at most one sync per batch, fewer under load. Disk
latency never blocks the event loop.

A failed write or sync (disk full: ``ENOSPC``/``EDQUOT`` → ``spool_full``; anything else →
``spool_write_failed``) never loses acked data: the step rolls the session back to its last synced
checkpoint (what came after it is cut off, freeing the space), an ack with ``error`` (kind
``ERROR_KIND_RECORDING``, retryable) and the unchanged ``durable_seq`` goes to the link, and frames after
``durable_seq`` are refused until the link resends from ``durable_seq + 1``. Ingest resumes by itself
when a resend is stored.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rtvoice.core.metrics import service_metrics
from rtvoice.core.retry import Backoff
from rtvoice.recorder.session import SessionRecorder
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb

log = logging.getLogger(__name__)
SPOOL_FULL = "spool_full"
SPOOL_WRITE_FAILED = "spool_write_failed"
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: Re-opening a session after a failed write; when even that fails the stream gives up (broken stream).
REOPEN_BACKOFF = Backoff(initial_s=0.05, max_s=1.0, max_attempts=8)


class AckWriter(Protocol):
    """The stream's ack side (``grpc.aio.ServicerContext.write``)."""

    async def write(self, message: Any) -> None: ...


def spool_error(exc: OSError) -> pb.ErrorFrame:
    """The ``RecordAck.error`` for a spool write failure: ``spool_full`` or ``spool_write_failed``."""
    code = SPOOL_FULL if exc.errno in _FULL_ERRNOS else SPOOL_WRITE_FAILED
    return pb.ErrorFrame(
        kind=pb.ERROR_KIND_RECORDING,
        code=code,
        message=f"recorder spool: {exc.strerror or exc}; frames after the acked seq are not stored yet",
        retryable=True,
        fatal=False,
    )


@dataclass(slots=True)
class _Step:
    """What one blocking step did: the seq now durable, and the error / re-opened recorder after a failure."""

    durable_seq: int
    synced: bool = False
    error: pb.ErrorFrame | None = None
    replaced: SessionRecorder | None = None


class StreamIngest:
    """Applies one stream's frames to ``rec`` and acks what is synced; see the module docstring.

    ``run_blocking(fn, *args)`` runs a blocking step on the spool thread pool; ``reopen()`` returns the
    session re-read from its last checkpoint (blocking); ``ack(**fields)`` builds a ``RecordAck`` (with
    the recorder id); ``sync_interval_s`` is the least time between two steps (0: one per batch);
    ``on_replace`` is told (on the loop) about the re-opened recorder after a rollback.
    """

    def __init__(
        self,
        rec: SessionRecorder,
        acks: AckWriter,
        *,
        run_blocking: Callable[..., Any],
        reopen: Callable[[], SessionRecorder],
        ack: Callable[..., rpb.RecordAck],
        on_replace: Callable[[SessionRecorder], None],
        sync_interval_s: float = 0.0,
    ) -> None:
        self.rec = rec
        self._acks = acks
        self._run_blocking = run_blocking
        self._reopen = reopen
        self._ack = ack
        self._on_replace = on_replace
        self._interval = sync_interval_s
        self.inbox: list[rpb.RecordFrame] = []
        self.await_resend = False
        self.ended = False
        self.reader_done = False
        self.syncs = 0
        self._wake = asyncio.Event()
        self._failing = False
        self._step_future: asyncio.Future[_Step] | None = None

    async def run(self, rest: Sequence[rpb.RecordFrame], batches: AsyncIterator[rpb.RecordBatch]) -> bool:
        """Apply ``rest`` (the first batch after its start frame), then every batch; True once the
        session's EndFrame is applied and synced, False when the stream ended without it. When this
        returns (or is cancelled), no step is running on the session any more."""
        self.inbox.extend(rest)
        reader = asyncio.get_running_loop().create_task(self._read(batches))
        try:
            await self._work()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if self._step_future is not None and not self._step_future.done():
                await asyncio.wait([self._step_future])  # the thread finishes its step; nothing is torn
        if not reader.cancelled() and reader.exception() is not None:
            log.info("session %s: stream broken: %s", self.rec.session_id, reader.exception())
        return self.ended

    async def _read(self, batches: AsyncIterator[rpb.RecordBatch]) -> None:
        # Reads on after the EndFrame: a failed final sync rolls back to before it, and the resend comes
        # on this stream. The worker ends the stream's work once the end is durable.
        try:
            async for batch in batches:
                self.inbox.extend(batch.frames)
                self._wake.set()
        finally:
            self.reader_done = True
            self._wake.set()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        last = -1e9
        while not self.ended:
            if not self.inbox:
                if self.reader_done:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            wait = last + self._interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the reader goes on collecting meanwhile
            frames, self.inbox = self.inbox, []
            self._step_future = asyncio.ensure_future(self._run_blocking(self._step, frames))
            step = await self._step_future
            last = loop.time()
            if step.replaced is not None:
                self.rec = step.replaced
                self._on_replace(step.replaced)
            if step.error is not None:
                await self._acks.write(self._ack(durable_seq=step.durable_seq, error=step.error))
            elif step.synced:
                self.syncs += 1
                await self._acks.write(self._ack(durable_seq=step.durable_seq))

    # ------------------------------------------------------------------------------ the blocking step

    def _step(self, frames: Sequence[rpb.RecordFrame]) -> _Step:
        """Apply ``frames`` and sync (worker thread; one step per session at a time)."""
        service_metrics("recorder").frames_in.inc(len(frames))
        rec = self.rec
        failure: OSError | None = None
        for frame in frames:
            if frame.WhichOneof("payload") == "start" or rec.ended:
                continue  # a stray start changes nothing; nothing follows an EndFrame
            if failure is not None or (self.await_resend and frame.seq > rec.processed_seq + 1):
                # Not stored: the link keeps it (not acked) and resends it after the error ack.
                rec.book.max_seq_seen = max(rec.book.max_seq_seen, frame.seq)
                continue
            self.await_resend = False
            try:
                rec.apply(frame)
            except OSError as exc:
                failure = exc
        synced = False
        if failure is None and rec.processed_seq > rec.durable_seq:
            try:
                rec.mark_durable(rec.sync(rec.snapshot()))
                synced = True
            except OSError as exc:
                failure = exc
        if failure is not None:
            return self._rollback(rec, failure)
        if self._failing:
            self._failing = False
            log.info("session %s: spool writes work again (durable seq %d)", rec.session_id, rec.durable_seq)
        self.ended = rec.ended
        return _Step(rec.durable_seq, synced=synced)

    def _rollback(self, old: SessionRecorder, exc: OSError) -> _Step:
        """Re-open the session from its last synced checkpoint (blocking); the step's error ack."""
        if not self._failing:
            log.error(
                "session %s: spool write failed (%s); acked frames are safe, later ones wait for a resend",
                old.session_id,
                exc.strerror or exc,
            )
            self._failing = True
        seen = max(old.book.max_seq_seen, old.processed_seq)
        old.release()
        backoff = REOPEN_BACKOFF.start()
        while True:
            try:
                new = self._reopen()
                break
            except OSError:
                delay = backoff.next_delay_s()
                if delay is None:
                    raise
                time.sleep(delay)
        new.book.max_seq_seen = max(new.book.max_seq_seen, seen)
        new.counts.write_failures += 1
        self.rec = new
        self.await_resend = True
        self.ended = False
        return _Step(new.durable_seq, error=spool_error(exc), replaced=new)
