"""``Recorder.Record``: the gRPC side of the recorder (proto/rtvoice/v1/recorder.proto).

One bidi stream per session (re-opened streams continue it). Frames are applied to the session's spool as
they arrive; every ``ack_every_frames`` frames or ``ack_interval_s`` the session is checkpointed and
``RecordAck{durable_seq}`` is sent. After ``end`` the archive is finalized (in a worker thread) and
``RecordAck{finalized, archive_uri}`` is sent; the upload to the store runs in the background with
backoff until the store confirms, then the spool copy is deleted.

A stream that ends without ``end`` (or is cancelled) is a *broken* stream: the session waits
``resume_grace_s`` for a ``resumed`` start and is then finalized with ``end_reason: stream_broken``,
``complete: false``. At start-up, finalized archives left in the spool are uploaded and unfinished
sessions wait the same grace period for their bridge to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.recorder.archive import finalize
from rtvoice.recorder.session import SessionRecorder, SpanSink
from rtvoice.recorder.spool import SessionSpool, scan_spool
from rtvoice.recorder.stores import ArchiveRecord, ArchiveStore, StoreError
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc

log = logging.getLogger(__name__)
_MAX_MESSAGE = 16 * 1024 * 1024


@dataclass
class RecorderConfig:
    """Settings of a recorder: spool, store, span sink, timings (seconds)."""

    spool_dir: Path
    store: ArchiveStore
    sink: SpanSink | None = None
    resume_grace_s: float = 30.0
    ack_every_frames: int = 50
    ack_interval_s: float = 0.1
    retry_initial_s: float = 0.5
    retry_max_s: float = 60.0
    first_frame_timeout_s: float = 30.0
    # How long the finalized ack may wait for the first upload attempt (the upload goes on regardless).
    upload_wait_s: float = 2.0


@dataclass(eq=False)
class _Live:
    """A session this process knows about and has not finalized yet."""

    spool: SessionSpool
    rec: SessionRecorder | None = None
    owner: asyncio.Task[Any] | None = None
    taken_over: bool = False
    grace: asyncio.TimerHandle | None = None
    finalizing: asyncio.Task[str] | None = None


@dataclass
class _Pump:
    unacked: int = 0
    ended: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


async def _unbatch(batches: AsyncIterator[rpb.RecordBatch]) -> AsyncIterator[rpb.RecordFrame]:
    """The frames of a ``RecordBatch`` stream, in order."""
    async for batch in batches:
        for frame in batch.frames:
            yield frame


class RecorderService(recorder_pb2_grpc.RecorderServicer):
    """The ``Recorder`` servicer; call :meth:`startup` once before serving and :meth:`shutdown` after."""

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self.store = config.store
        self._live: dict[str, _Live] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()
        self._uploads: dict[str, asyncio.Task[None]] = {}
        self._first_attempt: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # ------------------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Upload archives left in the spool and give unfinished sessions their grace period."""
        self.config.spool_dir.mkdir(parents=True, exist_ok=True)
        finalized, unfinished = await asyncio.to_thread(scan_spool, self.config.spool_dir)
        for spool in finalized:
            self._submit_upload(spool)
        for spool in unfinished:
            live = _Live(spool)
            self._live[spool.session_id] = live
            self._arm_grace(live)
        if finalized or unfinished:
            log.info("spool: %d archives to upload, %d unfinished sessions", len(finalized), len(unfinished))

    async def shutdown(self) -> None:
        """Stop timers and background work; unfinished sessions stay in the spool for the next start."""
        self._stopping = True
        for live in self._live.values():
            if live.grace is not None:
                live.grace.cancel()
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for live in self._live.values():
            if live.rec is not None and live.finalizing is None:
                live.rec.checkpoint()
                live.rec.release()
        self._live.clear()

    async def drain_uploads(self, timeout_s: float) -> bool:
        """Wait until no upload is pending (tests, graceful exit); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._uploads:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.wait(list(self._uploads.values()), timeout=left)
        return True

    @property
    def pending_uploads(self) -> list[str]:
        """Session ids whose archives wait for the store."""
        return sorted(self._uploads)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------------------ the stream

    async def Record(
        self, request_iterator: AsyncIterator[rpb.RecordBatch], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Serve one Record stream (see the module docstring for the protocol)."""
        it = aiter(_unbatch(request_iterator))
        try:
            first = await asyncio.wait_for(anext(it), self.config.first_frame_timeout_s)
        except (StopAsyncIteration, TimeoutError):
            return
        if first.WhichOneof("payload") != "start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first RecordFrame must carry `start`")
        try:
            spool = SessionSpool(self.config.spool_dir, first.start.session.session_id)
        except RealtimeProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        attached = await self._attach(spool, first, context)
        if isinstance(attached, str):
            await context.write(rpb.RecordAck(durable_seq=first.seq, finalized=True, archive_uri=attached))
            return
        live = attached
        rec = live.rec
        assert rec is not None
        await context.write(rpb.RecordAck(durable_seq=rec.durable_seq))
        pump = _Pump()
        reader = asyncio.get_running_loop().create_task(self._read(it, rec, pump))
        try:
            while not reader.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pump.wake.wait(), self.config.ack_interval_s)
                pump.wake.clear()
                if rec.processed_seq > rec.durable_seq:
                    pump.unacked = 0
                    await context.write(rpb.RecordAck(durable_seq=rec.checkpoint()))
            if not reader.cancelled() and reader.exception() is not None:
                log.info("session %s: stream broken: %s", rec.session_id, reader.exception())
            rec.checkpoint()
            if not pump.ended:
                self._broken(live)
                return
            await context.write(rpb.RecordAck(durable_seq=rec.durable_seq))
            live.finalizing = self._spawn(self._finalize(live))
            uri = await asyncio.shield(live.finalizing)
            tried = self._first_attempt.get(rec.session_id)
            if tried is not None and self.config.upload_wait_s > 0:  # usually stored at once: ack after it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tried.wait(), self.config.upload_wait_s)
            await context.write(rpb.RecordAck(durable_seq=rec.durable_seq, finalized=True, archive_uri=uri))
        except BaseException:  # cancelled (caller gone, takeover, shutdown) or the ack write failed
            reader.cancel()
            if live.finalizing is None:
                rec.checkpoint()
                self._broken(live)
            raise
        finally:
            if live.owner is asyncio.current_task():
                live.owner = None

    async def _read(self, it: AsyncIterator[rpb.RecordFrame], rec: SessionRecorder, pump: _Pump) -> None:
        try:
            async for frame in it:
                if frame.WhichOneof("payload") == "start":
                    continue  # a stream carries one start; a stray one changes nothing
                if rec.apply(frame):
                    pump.unacked += 1
                if rec.ended:
                    pump.ended = True
                    return
                if pump.unacked >= self.config.ack_every_frames:
                    pump.wake.set()
        finally:
            pump.wake.set()

    async def _attach(
        self, spool: SessionSpool, first: rpb.RecordFrame, context: grpc.aio.ServicerContext[Any, Any]
    ) -> _Live | str:
        """The live session for this stream's start, or the archive URI when it is already finalized."""
        sid = spool.session_id
        resumed = first.start.resumed
        live = self._live.get(sid)
        if live is None:
            if sid in self._finished:
                return self._finished[sid]
            if spool.is_finalized():
                return self.store.uri_for(ArchiveRecord.from_dict(spool.load_finalized()))
            if spool.exists() and not resumed:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"session {sid} is already recorded")
            live = _Live(spool)
            self._live[sid] = live
        elif live.finalizing is not None:
            return await asyncio.shield(live.finalizing)
        elif not resumed:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"session {sid} is already being recorded")
        if live.grace is not None:
            live.grace.cancel()
            live.grace = None
        if live.owner is not None and not live.owner.done():
            live.taken_over = True  # a half-dead earlier stream of the same bridge: the new one wins
            live.owner.cancel()
            await asyncio.wait([live.owner], timeout=5.0)
        live.taken_over = False
        live.owner = asyncio.current_task()
        if live.rec is None:
            if spool.exists():
                live.rec = SessionRecorder.resume(spool, self.config.sink)
            else:
                live.rec = SessionRecorder.create(spool, first, self.config.sink)
                if resumed:
                    log.warning("session %s: resumed stream for a session this spool never saw", sid)
        if resumed:
            live.rec.note_resumed(first.start)
            log.info("session %s resumed at durable seq %d", sid, live.rec.durable_seq)
        return live

    # ------------------------------------------------------------------------------ ending

    def _broken(self, live: _Live) -> None:
        if live.taken_over or self._stopping or live.finalizing is not None:
            return
        self._arm_grace(live)

    def _arm_grace(self, live: _Live) -> None:
        if live.grace is not None:
            live.grace.cancel()
        loop = asyncio.get_running_loop()
        live.grace = loop.call_later(self.config.resume_grace_s, self._grace_expired, live)

    def _grace_expired(self, live: _Live) -> None:
        live.grace = None
        if self._stopping or live.finalizing is not None:
            return
        if live.owner is not None and not live.owner.done():
            return
        if live.rec is None:
            live.rec = SessionRecorder.resume(live.spool, self.config.sink)
        live.finalizing = self._spawn(self._finalize(live))

    async def _finalize(self, live: _Live) -> str:
        rec = live.rec
        assert rec is not None
        broken = not rec.ended
        try:
            record = await asyncio.to_thread(finalize, rec, broken=broken)
        except Exception:
            log.exception("session %s: finalize failed; the spool stays for the next start", rec.session_id)
            raise
        uri = self.store.uri_for(ArchiveRecord.from_dict(record))
        self._live.pop(rec.session_id, None)
        self._finished[rec.session_id] = uri
        while len(self._finished) > 10_000:
            self._finished.popitem(last=False)
        log.info("session %s finalized (%s): %s", rec.session_id, "broken" if broken else "complete", uri)
        self._submit_upload(live.spool)
        return uri

    def _submit_upload(self, spool: SessionSpool) -> None:
        if spool.session_id not in self._uploads:
            self._first_attempt[spool.session_id] = asyncio.Event()
            self._uploads[spool.session_id] = self._spawn(self._upload(spool))

    async def _upload(self, spool: SessionSpool) -> None:
        try:
            rec = ArchiveRecord.from_dict(await asyncio.to_thread(spool.load_finalized))
            delay = self.config.retry_initial_s
            while True:
                try:
                    uri = await asyncio.to_thread(self.store.put, spool.archive_dir, rec)
                    break
                except StoreError as exc:
                    log.warning("session %s: %s; retrying in %.1f s", rec.session_id, exc, delay)
                    self._first_attempt[spool.session_id].set()  # the finalized ack need not wait longer
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)
            # Stored and confirmed by the store: only now the spool copy goes, before the finalized ack.
            await asyncio.to_thread(shutil.rmtree, spool.dir)
            log.info("session %s stored at %s", rec.session_id, uri)
        finally:
            self._uploads.pop(spool.session_id, None)
            attempted = self._first_attempt.pop(spool.session_id, None)
            if attempted is not None:
                attempted.set()


class RecorderServer:
    """A ``grpc.aio`` server running :class:`RecorderService` on ``host:port`` (0 = ephemeral)."""

    def __init__(self, config: RecorderConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.requested_port = port
        self.port = 0
        self.service = RecorderService(config)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Bind, start serving, run the spool start-up scan; returns the bound port.

        Raises ``OSError`` when the address cannot be bound.
        """
        if self.requested_port:
            _check_free(self.host, self.requested_port)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.so_reuseport", 0),  # a second recorder on the same port must fail, not share it
            ]
        )
        recorder_pb2_grpc.add_RecorderServicer_to_server(self.service, server)
        try:
            port = server.add_insecure_port(f"{self.host}:{self.requested_port}")
        except RuntimeError as exc:
            raise OSError(f"cannot bind {self.host}:{self.requested_port}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot bind {self.host}:{self.requested_port}")
        await server.start()
        self._server = server
        self.port = port
        await self.service.startup()
        return port

    async def stop(self, grace_s: float | None = 1.0) -> None:
        """Stop serving (open streams are cancelled after ``grace_s``) and stop background work."""
        self.service._stopping = True
        if self._server is not None:
            await self._server.stop(grace_s)
        await self.service.shutdown()


def _check_free(host: str, port: int) -> None:
    """Raise ``OSError`` with a clear message when ``host:port`` is taken (before gRPC logs its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
