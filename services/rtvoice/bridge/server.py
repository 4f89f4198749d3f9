"""The realtime-bridge gRPC server: ``RealtimeBridge.Converse`` plus the standard gRPC health service.

Each ``Converse`` stream is one :class:`~rtvoice.bridge.session.BridgeSession`. The first ``ClientFrame``
must be ``start``; its caller formats and safe overrides are applied to the agent settings. Draining
(SIGTERM): health turns ``NOT_SERVING``, new streams are refused with a typed ``unavailable``/``draining``
error, live sessions get up to the drain timeout to finish, the rest end with a retryable
``unavailable``/``reconnect`` error and ``EndFrame(END_REASON_BRIDGE_SHUTDOWN)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import _async as health_aio  # = grpc_health.v1.health.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rtvoice.bridge.config import SessionConfig, session_config
from rtvoice.bridge.load import BridgeLoad
from rtvoice.bridge.providers import create_provider
from rtvoice.bridge.providers.base import RealtimeProvider
from rtvoice.bridge.recorder_link import drain_links
from rtvoice.bridge.recording import recording_failed_handler
from rtvoice.bridge.session import BridgeSession, RecorderSink
from rtvoice.core.capacity import DEFAULT_MAX_LOOP_LAG_MS
from rtvoice.core.end_reason import EndReason, end_frame, wire_name
from rtvoice.core.errors import RealtimeError, RealtimeProtocolError, RealtimeUnavailableError
from rtvoice.core.internal_auth import InternalCredentials, server_interceptors
from rtvoice.core.metrics import unauthenticated_counter
from rtvoice.core.secret_file import SecretFile
from rtvoice.core.settings import AgentSettings, SettingsError, dumps_settings
from rtvoice.core.shutdown import CUT_SESSIONS_END_S
from rtvoice.core.trace_context import TraceContext, tracer_for
from rtvoice.v1 import bridge_pb2, bridge_pb2_grpc
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb

log = logging.getLogger(__name__)

SERVICE_NAME = bridge_pb2.DESCRIPTOR.services_by_name["RealtimeBridge"].full_name
ProviderFactory = Callable[[AgentSettings, str | None, str | None], RealtimeProvider]


class SessionRecorder(RecorderSink, Protocol):
    """``RecorderLink`` as the server uses it: the session's sink plus ``open`` / ``close``."""

    @property
    def spans_dropped(self) -> int: ...
    @property
    def frames_dropped(self) -> int: ...

    def open(self) -> None: ...
    async def close(self, end: pb.EndFrame, timeout_s: float = 5.0) -> str | None: ...


RecorderFactory = Callable[[str | None, rpb.RecordStart, int], SessionRecorder]


def recorder_link(
    target: str | None,
    start: rpb.RecordStart,
    clock_t0_ns: int,
    credentials: InternalCredentials | None = None,
) -> SessionRecorder:
    """The default recorder of a session: ``rtvoice.bridge.recorder_link.RecorderLink`` (``None`` = off);
    ``credentials``: the internal token it presents (bind with ``functools.partial``)."""
    from rtvoice.bridge.recorder_link import RecorderLink

    link: SessionRecorder = RecorderLink(target, start, clock_t0_ns=clock_t0_ns, credentials=credentials)
    return link


@dataclass(slots=True)
class BridgeConfig:
    """What a bridge serves: one agent's ``settings``; ``api_key`` never leaves the process except in the
    provider's auth header; ``provider_url`` overrides ``settings.base_url``; ``recorder_target``
    ``HOST:PORT`` or ``None`` (recording off)."""

    settings: AgentSettings
    api_key: str | None = None
    provider_url: str | None = None
    recorder_target: str | None = None
    agent_name: str = "default"
    agent_namespace: str = "default"
    provider_factory: ProviderFactory = create_provider
    recorder_factory: RecorderFactory = recorder_link
    # Load and security (rtvoice.bridge.load, rtvoice.core.internal_auth): max_sessions 0 = unlimited;
    # internal_credentials guard this server (give the recorder factory them too); api_key_file, when
    # set, is re-read for each new session (a rotated Secret) instead of api_key.
    max_sessions: int = 0
    max_loop_lag_ms: float = DEFAULT_MAX_LOOP_LAG_MS
    internal_credentials: InternalCredentials | None = None
    api_key_file: SecretFile | None = None

    def provider_api_key(self) -> str | None:
        """The provider key for a new session: the key file's current content, else ``api_key``."""
        return self.api_key_file.value() if self.api_key_file is not None else self.api_key


class BridgeServicer(bridge_pb2_grpc.RealtimeBridgeServicer):
    """``Converse`` handler; tracks live sessions for draining."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.draining = False
        self.sessions: set[BridgeSession] = set()
        self.load = BridgeLoad(config.max_sessions, config.max_loop_lag_ms, lambda: self.draining)
        self._closing: set[asyncio.Future[str | None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def _refuse(self, context: grpc.aio.ServicerContext, err: RealtimeError) -> None:
        err.fatal = True
        with contextlib.suppress(Exception):
            await context.write(pb.ServerFrame(error=err.to_frame()))
            await context.write(pb.ServerFrame(end=end_frame(pb.END_REASON_BRIDGE_REFUSED, err.code)))

    async def Converse(
        self, request_iterator: AsyncIterator[pb.ClientFrame], context: grpc.aio.ServicerContext
    ) -> None:
        # Read the SessionStart before answering, even to refuse: a handler that returns with the caller's
        # first message unread makes gRPC reset the stream (status INTERNAL), and the refusal frames
        # written before it would be lost with it — the ingress would then see "unreachable", not "full".
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        if self.draining:
            err = RealtimeUnavailableError(
                "the bridge is draining; connect again", code="draining", retryable=True
            )
            self.load.refused_draining()
            await self._refuse(context, err)
            return
        full = self.load.refusal()
        if full is not None:
            await self._refuse(context, full)
            return
        self.load.admit(context)
        if first.WhichOneof("frame") != "start":
            err2 = RealtimeProtocolError("the first ClientFrame must be SessionStart", code="missing_start")
            await self._refuse(context, err2)
            return
        start = pb.SessionStart()
        start.CopyFrom(first.start)
        start.session_id = start.session_id or uuid.uuid4().hex
        try:
            cfg = session_config(self.config.settings, start)
            provider = self.config.provider_factory(
                cfg.settings, self.config.provider_api_key(), self.config.provider_url
            )
        except RealtimeError as err3:
            await self._refuse(context, err3)
            return
        except SettingsError as err4:
            await self._refuse(context, RealtimeProtocolError(str(err4), code="invalid_settings"))
            return
        await self._run_session(start, first, cfg, provider, request_iterator, context)

    async def _run_session(
        self,
        start: pb.SessionStart,
        first: pb.ClientFrame,
        cfg: SessionConfig,
        provider: RealtimeProvider,
        request_iterator: AsyncIterator[pb.ClientFrame],
        context: grpc.aio.ServicerContext,
    ) -> None:
        settings = cfg.settings
        tracer = tracer_for(start.session_id, start.traceparent)
        # the recorder labels the archive with the session's trace (minted here when the caller sent none)
        start.traceparent = TraceContext(tracer.trace_id, tracer.root_span_id).traceparent
        clock_t0_ns = time.monotonic_ns()  # the session clock's 0, shared by the recorder link and session
        record_start = rpb.RecordStart(
            session=start,
            agent_settings_json=dumps_settings(settings),
            provider=settings.provider,
            model=settings.effective_model,
        )
        target = self.config.recorder_target if settings.recording.enabled else None
        recorder = self.config.recorder_factory(target, record_start, clock_t0_ns)
        recorder.open()
        recorder.record_client(first)
        write, request_iterator = self.load.meter(context.write, request_iterator)
        session = BridgeSession(
            session_id=start.session_id,
            config=cfg,
            provider=provider,
            recorder=recorder,
            tracer=tracer,
            write=write,
            clock_t0_ns=clock_t0_ns,
        )
        if hasattr(recorder, "on_error"):  # RecorderLink; a test's recorder may not report errors
            recorder.on_error = recording_failed_handler(session, settings.recording.required)
        self.sessions.add(session)
        self.load.metrics.session_started()
        self._idle.clear()
        reason: EndReason = pb.END_REASON_INTERNAL_ERROR
        try:
            reason = await session.run(request_iterator)
        finally:
            # Shielded: a caller that drops the RPC cancels this handler, but the recorder must still get
            # the EndFrame, or it would wait out its resume grace before archiving the session.
            closing = asyncio.ensure_future(recorder.close(end_frame(session.end_reason or reason)))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            # The session is over for the caller either way: it stops counting as live (capacity, drain)
            # even when the handler is cancelled while the archive is still being finalized.
            self.sessions.discard(session)
            self.load.metrics.session_ended(wire_name(session.end_reason or reason))
            if not self.sessions:
                self._idle.set()
            uri = await asyncio.shield(closing)
            log.info(
                "session %s ended (%s); archive %s; dropped spans %d frames %d",
                start.session_id,
                wire_name(session.end_reason or reason),
                uri or "-",
                recorder.spans_dropped,
                recorder.frames_dropped,
            )

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no session is live and every ended session's recorder link has closed (its
        ``EndFrame`` sent, the archive finalized or handed to a background finisher); ``False`` on
        timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        closing = list(self._closing)
        if closing:
            _, still = await asyncio.wait(closing, timeout=max(0.0, deadline - loop.time()))
            return not still
        return True


class BridgeServer:
    """A grpc.aio server with the bridge and the health service (``""`` and the bridge service name)."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.servicer = BridgeServicer(config)
        self.health = health_aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind and start; returns the bound port. Raises ``RuntimeError`` when the address is taken."""
        server = grpc.aio.server(
            interceptors=server_interceptors(
                self.config.internal_credentials, unauthenticated_counter("bridge")
            ),
            options=[("grpc.so_reuseport", 0)],
        )
        bridge_pb2_grpc.add_RealtimeBridgeServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.servicer.load.start(self.health, ("", SERVICE_NAME))
        return self.port

    async def drain(self, timeout_s: float, end_timeout_s: float = CUT_SESSIONS_END_S) -> int:
        """Stop taking sessions, let live ones finish for ``timeout_s``, then end the rest with a typed
        ``reconnect`` error. Returns how many sessions had to be ended."""
        self.servicer.draining = True
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if await self.servicer.wait_idle(timeout_s):
            await drain_links(end_timeout_s)
            return 0
        remaining = list(self.servicer.sessions)
        for session in remaining:
            session.shutdown(
                RealtimeUnavailableError(
                    "the bridge is shutting down; reconnect to continue",
                    code="reconnect",
                    retryable=True,
                    fatal=True,
                ),
                pb.END_REASON_BRIDGE_SHUTDOWN,
            )
        await self.servicer.wait_idle(end_timeout_s)
        await drain_links(end_timeout_s)  # archives still finishing in the background get their time
        return len(remaining)

    async def stop(self, grace_s: float = 1.0) -> None:
        await self.servicer.load.stop()
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
