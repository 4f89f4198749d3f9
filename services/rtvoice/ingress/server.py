"""The ingress server: ``websockets`` (compression off) serving the web page and caller sessions.

Embeddable (tests, ``rtvoice up``)::

    server = IngressServer(IngressConfig(bridge="127.0.0.1:50051", auth_secret=b"..." * 4))
    await server.start()                  # binds; server.port, server.url
    ...
    await server.drain(timeout_s=30)      # 503 for new sessions, let live ones finish, cut the rest
    await server.close()
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field

import websockets.asyncio.server as ws_server
from websockets.asyncio.server import ServerConnection

from rtvoice.core.capacity import DEFAULT_MAX_LOOP_LAG_MS, FULL_CODE, CapacityGate
from rtvoice.core.internal_auth import InternalCredentials
from rtvoice.core.metrics import serve_metrics, service_metrics
from rtvoice.core.service import redact
from rtvoice.core.shutdown import CUT_SESSIONS_END_S, DRAIN_TIMEOUT_S
from rtvoice.ingress.gate import GateConfig, HttpGate
from rtvoice.ingress.limits import Limits
from rtvoice.ingress.routing import AgentRef, BridgeRouter
from rtvoice.ingress.session import CallerSession, SessionOptions

log = logging.getLogger("rtvoice.ingress")


class RedactFilter(logging.Filter):
    """Masks tokens and keys in a record's message *before* any handler sees it (the ``websockets`` logger
    prints request lines and headers at DEBUG, which carry ``?token=`` and ``Authorization``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_WS_LOGGER = logging.getLogger("rtvoice.ingress.websockets")
_WS_LOGGER.addFilter(RedactFilter())


@dataclass(slots=True)
class IngressConfig:
    """Everything ``rtvoice ingress`` takes (see ``rtvoice ingress --help`` for units and defaults).

    Exactly one of ``bridge`` (``HOST:PORT``) or ``bridge_address_pattern`` (``{namespace}``/``{name}``
    placeholders). ``auth_secret`` is required unless ``no_auth``. ``max_sessions`` 0 = unlimited.
    ``socket_send_buffer_bytes`` caps the kernel send buffer of each caller socket (0 = OS autotuning, which
    grows to megabytes = tens of seconds of audio that a slow caller hides from the bounded queue and that
    delays ``audio.clear``).
    """

    bridge: str | None = None
    bridge_address_pattern: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    auth_secret: bytes | None = None
    no_auth: bool = False
    allowed_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    max_sessions: int = 0
    drain_timeout_s: float = DRAIN_TIMEOUT_S
    connect_timeout_s: float = 3.0
    ready_timeout_s: float = 15.0
    default_agent: str = "default/assistant"
    socket_send_buffer_bytes: int = 65536
    bridge_cluster_domain: str | None = None
    internal_credentials: InternalCredentials | None = None
    max_loop_lag_ms: float = DEFAULT_MAX_LOOP_LAG_MS
    metrics_port: int | None = None
    reuse_port: bool = False


class IngressServer:
    """The running ingress; see the module docstring. ``sessions`` are the live caller sessions."""

    def __init__(self, config: IngressConfig) -> None:
        self.config = config
        self.router = BridgeRouter(
            bridge=config.bridge,
            pattern=config.bridge_address_pattern,
            cluster_domain=config.bridge_cluster_domain,
            connect_timeout_s=config.connect_timeout_s,
            credentials=config.internal_credentials,
        )
        self.capacity = CapacityGate(config.max_sessions, config.max_loop_lag_ms)
        self.metrics = service_metrics("ingress")
        self.metrics_port: int | None = None
        self.gate = HttpGate(
            GateConfig(
                secret=config.auth_secret,
                no_auth=config.no_auth,
                allowed_origins=frozenset(o.rstrip("/") for o in config.allowed_origins),
                default_agent=config.default_agent,
            ),
            self._refusal,
            self._agent_refusal,
        )
        self.sessions: set[CallerSession] = set()
        self.draining = False
        self.port = 0
        self._server: ws_server.Server | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def url(self) -> str:
        """``http://host:port/`` of the web page (loopback when bound to all interfaces)."""
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "", "::") else self.config.host
        return f"http://{host}:{self.port}/"

    def ws_url(self, agent: AgentRef | str) -> str:
        """``ws://host:port/v1/agents/ns/name`` for ``agent`` (``AgentRef`` or ``"ns/name"``)."""
        path = agent.path if isinstance(agent, AgentRef) else f"/v1/agents/{agent}"
        return "ws" + self.url[len("http") : -1] + path

    def _refusal(self) -> str | None:
        if self.draining:
            return "draining"
        return FULL_CODE if self.capacity.full else None

    def _agent_refusal(self, agent: AgentRef) -> str | None:
        """``full`` when every known bridge of ``agent`` is draining, full or down."""
        return FULL_CODE if self.router.saturated(agent) else None

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the address is in use or not available."""
        if self.config.no_auth:
            log.warning(
                "caller authentication is DISABLED (--no-auth): anyone who reaches this port can talk "
                "to any agent; use it for development only"
            )
        limits = self.config.limits
        self._server = await ws_server.serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self.gate.process_request,
            compression=None,
            max_size=limits.websocket_max_size,
            max_queue=64,
            close_timeout=2,
            ping_interval=20,
            ping_timeout=20,
            server_header="rtvoice-ingress",
            logger=_WS_LOGGER,
            reuse_port=self.config.reuse_port or None,
        )
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])
        self._start_load_reporting()
        log.info(
            "ingress listening on %s (bridge %s)",
            self.url,
            self.config.bridge or self.config.bridge_address_pattern,
        )

    def _start_load_reporting(self) -> None:
        """Loop-lag timer and ``/metrics`` (``metrics_port``; raises ``OSError`` when taken)."""
        self.metrics.max_sessions.set(self.config.max_sessions)
        self.capacity.on_lag = self.metrics.loop_lag_ms.set
        self.capacity.lag.start()
        self.metrics_port = serve_metrics(self.config.host, self.config.metrics_port)

    async def _handle(self, ws: ServerConnection) -> None:
        admission = self.gate.admit(ws)
        if admission is None:  # pragma: no cover - process_request always admits before a handshake
            await ws.close(1011, "not admitted")
            return
        metadata = {"transport": "websocket", "protocol": "v1"}
        if admission.user_agent:
            metadata["user_agent"] = admission.user_agent
        if admission.origin:
            metadata["origin"] = admission.origin
        if admission.claims is not None and admission.claims.subject:
            metadata["auth_subject"] = admission.claims.subject
        if self.config.socket_send_buffer_bytes > 0:
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.socket_send_buffer_bytes)
        options = SessionOptions(self.config.limits, self.config.ready_timeout_s, metadata)
        session = CallerSession(ws, admission.agent, self.router, options)
        self.sessions.add(session)
        self.capacity.admit()
        self.metrics.session_started()
        self._idle.clear()
        try:
            await session.run()
        except Exception:
            log.exception("session %s failed unexpectedly", session.session_id)
        finally:
            self.sessions.discard(session)
            self.capacity.release()
            self.metrics.session_ended(session.end_reason)
            if not self.sessions:
                self._idle.set()

    async def drain(self, timeout_s: float | None = None) -> int:
        """Stop taking sessions (503), wait up to ``timeout_s`` (default ``drain_timeout_s``) for live ones
        to end, then end the rest with ``error`` {code: reconnect, retryable} and ``session.ended``.
        Returns how many sessions had to be cut."""
        self.draining = True
        timeout = self.config.drain_timeout_s if timeout_s is None else timeout_s
        log.info("draining: %d live session(s), waiting up to %g s", len(self.sessions), timeout)
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            pass
        cut = list(self.sessions)
        for session in cut:
            session.finish_for_drain()
        if cut:
            try:
                await asyncio.wait_for(self._idle.wait(), CUT_SESSIONS_END_S)
            except TimeoutError:
                left = len(self.sessions)
                log.warning("%d session(s) did not end within %g s after draining", left, CUT_SESSIONS_END_S)
        log.info("drained in %.1f s (%d session(s) cut)", time.monotonic() - started, len(cut))
        return len(cut)

    async def close(self) -> None:
        """Close the listening socket, every connection and every bridge channel."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.capacity.lag.stop()
        await self.router.close()

    async def __aenter__(self) -> IngressServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain(0)
        await self.close()
