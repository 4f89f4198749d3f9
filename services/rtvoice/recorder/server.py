"""``Recorder.Record``: the gRPC side of the recorder (proto/rtvoice/v1/recorder.proto).

One bidi stream per session part (re-opened streams continue it). Frames are applied to the session's
spool as they arrive and fdatasync'ed once per batch in a worker thread before
``RecordAck{durable_seq}`` is sent (ingest.py; a failed write is answered with ``RecordAck.error``).
After ``end`` the archive is finalized (in a worker thread, retried while the disk is full) and
``RecordAck{finalized, archive_uri}`` is sent; the upload to the store runs in the background with backoff
until the store confirms, then the spool copy is deleted. Every ack carries this recorder's
``recorder_id``.

A stream that ends without ``end`` (or is cancelled) is a *broken* stream: the session waits
``resume_grace_s`` for a ``resumed`` start and is then finalized with ``end_reason: stream_broken``,
``complete: false``. At start-up, finalized archives left in the spool are uploaded, unfinished sessions
wait the same grace period for their bridge to come back, and entries that cannot be read are moved to
the quarantine (quarantine.py) and counted in ``RecorderService.quarantined``.

A link that resumes a session it believes is held by recorder ``X`` sends gRPC metadata
``rtvoice-recorder-id: X``; another recorder that does not hold the session refuses the stream with
``FAILED_PRECONDITION``, so the link can look for ``X`` elsewhere instead of starting a stray copy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.core.internal_auth import InternalCredentials, server_interceptors
from rtvoice.core.metrics import bind_recorder_metrics, service_metrics, unauthenticated_counter
from rtvoice.core.retry import Backoff
from rtvoice.recorder.archive import finalize
from rtvoice.recorder.ingest import StreamIngest, spool_error
from rtvoice.recorder.quarantine import quarantine
from rtvoice.recorder.session import SessionRecorder, SpanSink, check_spool
from rtvoice.recorder.spool import SessionSpool, SpoolDamaged, scan_spool
from rtvoice.recorder.stores import ArchiveRecord, ArchiveStore
from rtvoice.recorder.targets import EXPECTED_RECORDER_METADATA
from rtvoice.recorder.uploads import UploadQueue
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc

log = logging.getLogger(__name__)
_MAX_MESSAGE = 16 * 1024 * 1024
#: Finalize retries while the disk is full (the spool keeps everything meanwhile).
FINALIZE_BACKOFF = Backoff(initial_s=0.2, max_s=10.0)
#: Store uploads: retried until the store confirms.
UPLOAD_BACKOFF = Backoff(initial_s=0.5, max_s=60.0)


@dataclass
class RecorderConfig:
    """Settings of a recorder: spool, store, span sink, identity, timings (seconds).

    ``recorder_id`` is sent in every ack (stable per instance, e.g. the pod name). ``durable=False``
    skips fdatasync (benchmarks only: ``durable_seq`` then means "written to the OS").
    ``sync_interval_s`` is the least time between two syncs+acks of one session (0: one per batch);
    ``sync_threads`` sizes the spool thread pool (spool writes and fdatasync run there).
    ``upload_backoff`` is the retry policy of store uploads.
    """

    spool_dir: Path
    store: ArchiveStore
    sink: SpanSink | None = None
    recorder_id: str = ""
    resume_grace_s: float = 30.0
    sync_interval_s: float = 0.0
    durable: bool = True
    sync_threads: int = 8
    upload_backoff: Backoff = UPLOAD_BACKOFF
    first_frame_timeout_s: float = 30.0
    # How long the finalized ack may wait for the first upload attempt (the upload goes on regardless).
    upload_wait_s: float = 2.0
    # The internal token bridges must present (rtvoice.core.internal_auth); None = no authentication.
    internal_credentials: InternalCredentials | None = None

    def __post_init__(self) -> None:
        self.recorder_id = self.recorder_id or socket.gethostname()


@dataclass(eq=False)
class _Live:
    """A session part this process knows about and has not finalized yet."""

    spool: SessionSpool
    rec: SessionRecorder | None = None
    owner: asyncio.Task[Any] | None = None
    taken_over: bool = False
    grace: asyncio.TimerHandle | None = None
    finalizing: asyncio.Task[str] | None = None


class RecorderService(recorder_pb2_grpc.RecorderServicer):
    """The ``Recorder`` servicer; call :meth:`startup` once before serving and :meth:`shutdown` after.

    ``quarantined`` counts spool entries moved to the quarantine by this process; ``write_failures``
    counts spool writes that failed (both for a metrics endpoint).
    """

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self.store = config.store
        self.recorder_id = config.recorder_id
        self.quarantined = 0
        self.write_failures = 0
        self._live: dict[str, _Live] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()
        self.uploads = UploadQueue(config.store, config.upload_backoff, self._spawn)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._pool = concurrent.futures.ThreadPoolExecutor(config.sync_threads, "recorder-spool")

    def ack(self, **fields: Any) -> rpb.RecordAck:
        """A ``RecordAck`` with this recorder's id."""
        return rpb.RecordAck(recorder_id=self.recorder_id, **fields)

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking spool work (fdatasync, re-open) on the spool thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    # ------------------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Upload archives left in the spool, give unfinished sessions their grace, quarantine damage."""
        self.config.spool_dir.mkdir(parents=True, exist_ok=True)
        found = await asyncio.to_thread(scan_spool, self.config.spool_dir)
        # A stream may have attached while the scan ran (the server is already serving): leave it be.
        finalized, unfinished, other = ([sp for sp in group if sp.name not in self._live] for group in found)
        for spool in other:
            await self._quarantine(spool, "neither a checkpoint nor finalized.json")
        for spool in finalized:
            try:
                await asyncio.to_thread(spool.load_finalized)
            except SpoolDamaged as exc:
                await self._quarantine(spool, str(exc))
                continue
            self.uploads.submit(spool)
        waiting = 0
        for spool in unfinished:
            try:
                await asyncio.to_thread(check_spool, spool)
            except SpoolDamaged as exc:
                await self._quarantine(spool, str(exc))
                continue
            live = _Live(spool)
            self._live[spool.name] = live
            self._arm_grace(live)
            waiting += 1
        if finalized or unfinished or other:
            log.info("spool: %d archives to upload, %d unfinished sessions, %d quarantined",
                     len(self.uploads.tasks), waiting, self.quarantined)  # fmt: skip

    async def _quarantine(self, spool: SessionSpool, reason: str) -> None:
        try:
            await asyncio.to_thread(quarantine, spool.dir, reason)
        except OSError as exc:
            log.error("spool entry %s is damaged (%s) and cannot be moved aside: %s", spool.name, reason, exc)
            return
        self.quarantined += 1

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
        await asyncio.to_thread(self._pool.shutdown, True)  # steps still running finish first
        for live in self._live.values():
            if live.rec is not None and live.finalizing is None:
                live.rec.release()  # the last synced checkpoint is what a restart continues from
        self._live.clear()

    @property
    def pending_uploads(self) -> list[str]:
        """Archive names (session id, ``<id>.part<n>``) whose archives wait for the store."""
        return self.uploads.pending

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_logged)
        return task

    # ------------------------------------------------------------------------------ the stream

    async def Record(
        self, request_iterator: AsyncIterator[rpb.RecordBatch], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Serve one Record stream (see the module docstring for the protocol)."""
        batches = aiter(request_iterator)
        try:
            batch = await asyncio.wait_for(anext(batches), self.config.first_frame_timeout_s)
        except (StopAsyncIteration, TimeoutError):
            return
        if not batch.frames or batch.frames[0].WhichOneof("payload") != "start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first RecordFrame must carry `start`")
        first = batch.frames[0]
        try:
            spool = SessionSpool(self.config.spool_dir, first.start.session.session_id, first.start.part)
        except RealtimeProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        attached = await self._attach(spool, first, context)
        if isinstance(attached, str):
            await context.write(self.ack(durable_seq=first.seq, finalized=True, archive_uri=attached))
            return
        live = attached
        rec = live.rec
        assert rec is not None
        await context.write(self.ack(durable_seq=rec.durable_seq))

        def replaced(new: SessionRecorder) -> None:  # after a failed write: re-opened from its checkpoint
            live.rec = new
            self.write_failures += 1

        ingest = StreamIngest(
            rec,
            context,
            run_blocking=self.blocking,
            reopen=functools.partial(self._reopen, spool),
            ack=self.ack,
            on_replace=replaced,
            sync_interval_s=self.config.sync_interval_s,
        )
        try:
            ended = await ingest.run(batch.frames[1:], batches)
            if not ended:
                self._arm_grace(live, broken=True)
                return
            live.finalizing = self._spawn(self._finalize(live, context))
            uri = await asyncio.shield(live.finalizing)
            # Usually stored at once: ack after the first attempt.
            await self.uploads.wait_first_attempt(spool.name, self.config.upload_wait_s)
            final = live.rec
            assert final is not None
            await context.write(self.ack(durable_seq=final.durable_seq, finalized=True, archive_uri=uri))
        except BaseException:  # cancelled (caller gone, takeover, shutdown) or the ack write failed
            if live.finalizing is None:
                self._arm_grace(live, broken=True)
            raise
        finally:
            if live.owner is asyncio.current_task():
                live.owner = None

    def _reopen(self, spool: SessionSpool) -> SessionRecorder:
        return SessionRecorder.resume(spool, self.config.sink, durable=self.config.durable)

    async def _attach(
        self, spool: SessionSpool, first: rpb.RecordFrame, context: grpc.aio.ServicerContext[Any, Any]
    ) -> _Live | str:
        """The live session for this stream's start, or the archive URI when it is already finalized."""
        name = spool.name
        resumed = first.start.resumed
        live = self._live.get(name)
        if live is None:
            if name in self._finished:
                return self._finished[name]
            if spool.is_finalized():
                try:
                    record = await asyncio.to_thread(spool.load_finalized)
                except SpoolDamaged as exc:
                    await self._quarantine(spool, str(exc))
                    await context.abort(grpc.StatusCode.DATA_LOSS, f"session {name}: spool damaged ({exc})")
                return self.store.uri_for(ArchiveRecord.from_dict(record))
            exists = spool.exists()
            if exists and not resumed:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"session {name} is already recorded")
            expected = _metadata(context, EXPECTED_RECORDER_METADATA)
            if resumed and not exists and expected and expected != self.recorder_id:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"session {name} is held by recorder {expected!r}, not {self.recorder_id!r}",
                )
            live = _Live(spool)
            self._live[name] = live
            service_metrics("recorder").sessions_started.inc()
        elif live.finalizing is not None:
            return await asyncio.shield(live.finalizing)
        elif not resumed:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"session {name} is already being recorded")
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
            await self._open_rec(live, first, context)
        assert live.rec is not None
        if resumed:
            live.rec.note_resumed(first.start)
            log.info("session %s resumed at durable seq %d", name, live.rec.durable_seq)
        return live

    async def _open_rec(
        self, live: _Live, first: rpb.RecordFrame, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Re-open the spooled session or create it; damage is quarantined, a full disk answered."""
        spool = live.spool
        try:
            if spool.exists():
                live.rec = await self.blocking(self._reopen, spool)
            else:
                create = functools.partial(SessionRecorder.create, durable=self.config.durable)
                live.rec = await self.blocking(create, spool, first, self.config.sink)
                if first.start.resumed:
                    log.warning("session %s: resumed stream for a session this spool never saw", spool.name)
        except SpoolDamaged as exc:
            self._live.pop(spool.name, None)
            await self._quarantine(spool, str(exc))
            await context.abort(grpc.StatusCode.DATA_LOSS, f"session {spool.name}: spool damaged ({exc})")
        except OSError as exc:
            self._live.pop(spool.name, None)
            self.write_failures += 1
            log.error("session %s: cannot open its spool: %s", spool.name, exc)
            await context.write(self.ack(durable_seq=0, error=spool_error(exc)))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"recorder spool: {exc.strerror or exc}")

    # ------------------------------------------------------------------------------ ending

    def _arm_grace(self, live: _Live, *, broken: bool = False) -> None:
        """Finalize ``live`` unless a stream resumes it within the grace (``broken``: its stream broke)."""
        if broken and (live.taken_over or self._stopping or live.finalizing is not None):
            return
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
        live.finalizing = self._spawn(self._finalize(live, None))

    async def _finalize(self, live: _Live, context: grpc.aio.ServicerContext[Any, Any] | None) -> str:
        """Write the archive, retrying while the disk is full (told once to the stream, if any)."""
        backoff = FINALIZE_BACKOFF.start()
        told = False
        while True:
            try:
                if live.rec is None:
                    live.rec = await self.blocking(self._reopen, live.spool)
                rec = live.rec
                record = await asyncio.to_thread(
                    functools.partial(finalize, rec, broken=not rec.ended, recorder_id=self.recorder_id)
                )
                service_metrics("recorder").sessions_ended.labels(str(record.get("end_reason"))).inc()
                break
            except SpoolDamaged as exc:
                self._live.pop(live.spool.name, None)
                await self._quarantine(live.spool, str(exc))
                raise
            except OSError as exc:
                if not told:
                    log.error("session %s: finalize failed (%s); retrying, the spool keeps everything",
                              live.spool.name, exc)  # fmt: skip
                    if context is not None:
                        with contextlib.suppress(Exception):
                            await context.write(self.ack(durable_seq=live.rec.durable_seq if live.rec else 0,
                                                         error=spool_error(exc)))  # fmt: skip
                    told = True
                await backoff.sleep()  # no deadline: the spool keeps the session until it fits
        uri = self.store.uri_for(ArchiveRecord.from_dict(record))
        name = live.spool.name
        self._live.pop(name, None)
        self._finished[name] = uri
        while len(self._finished) > 10_000:
            self._finished.popitem(last=False)
        log.info("session %s finalized (%s): %s", name, "broken" if not rec.ended else "complete", uri)
        self.uploads.submit(live.spool)
        return uri


def _logged(task: asyncio.Task[Any]) -> None:
    """Retrieve a background task's failure (already logged or quarantined where it happened)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("background task %s failed: %r", task.get_name(), task.exception())


def _metadata(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return ""


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
            interceptors=server_interceptors(
                self.config.internal_credentials, unauthenticated_counter("recorder")
            ),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.so_reuseport", 0),  # a second recorder on the same port must fail, not share it
            ],
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
        live, uploads = self.service._live, self.service.uploads.tasks
        bind_recorder_metrics(lambda: len(live), lambda: len(uploads), self.config.spool_dir)
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
