"""One caller session: a WebSocket (caller protocol v1) relayed to ``RealtimeBridge.Converse``.

Tasks per session: the caller reader (this coroutine), the bridge reader, the caller writer (drains the
bounded :class:`~rtvoice.ingress.limits.OutboundQueue`) and a ticker enforcing the idle and duration
limits. Every way a session can end goes through :meth:`CallerSession.finish` with a reason (the
``session.ended`` reason and the ``EndFrame`` reason the bridge and recorder see); when agent audio had
to be dropped for a slow caller the ``EndFrame`` carries the count in ``agent_audio_frames_dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from rtvoice.core.capacity import FULL_CODE
from rtvoice.core.end_reason import end_frame, from_wire_name, wire_name
from rtvoice.core.errors import (
    RealtimeError,
    RealtimeLimitError,
    RealtimeProtocolError,
    RealtimeUnavailableError,
)
from rtvoice.core.metrics import service_metrics
from rtvoice.core.spans import now_ns
from rtvoice.ingress import protocol as proto
from rtvoice.ingress.limits import Close, Limits, OutboundOverflow, OutboundQueue, SessionGuard
from rtvoice.ingress.placement import INTERNAL_AUTH_CODE, Placed
from rtvoice.ingress.relay import AgentRelay
from rtvoice.ingress.routing import AgentRef, BridgeRouter
from rtvoice.ingress.tracing import IngressTrace
from rtvoice.ingress.uplink import BridgeUplink
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger("rtvoice.ingress.session")
METRICS = service_metrics("ingress")

# WebSocket close codes (RFC 6455 + IANA registry).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013

# Session end reasons (wire names of EndReason: session.ended.reason; see rtvoice.core.end_reason).
REASON_HANGUP = wire_name(pb.END_REASON_CALLER_HANGUP)
REASON_DISCONNECTED = wire_name(pb.END_REASON_CALLER_DISCONNECTED)
REASON_BRIDGE_LOST = wire_name(pb.END_REASON_BRIDGE_LOST)
REASON_UNREACHABLE = wire_name(pb.END_REASON_AGENT_UNREACHABLE)
REASON_SHUTDOWN = wire_name(pb.END_REASON_SERVER_SHUTDOWN)
REASON_SLOW_CONSUMER = wire_name(pb.END_REASON_SLOW_CONSUMER)
REASON_INTERNAL = wire_name(pb.END_REASON_INTERNAL_ERROR)
REASON_BRIDGE_REFUSED = wire_name(pb.END_REASON_BRIDGE_REFUSED)

BRIDGE_END_WAIT_S = 3.0
WRITER_FLUSH_S = 2.0
BRIDGE_SETTLE_S = 10.0


@dataclass(slots=True)
class SessionOptions:
    """Per-server settings every session shares."""

    limits: Limits = field(default_factory=Limits)
    ready_timeout_s: float = 15.0
    metadata: dict[str, str] = field(default_factory=dict)


class CallerSession:
    """Relays one caller WebSocket to its agent's bridge until either side ends it.

    ``run()`` returns when the session is over and the WebSocket is closed; it never raises for caller
    or bridge failures (they become typed ``error`` events and a ``session.ended``).
    """

    def __init__(
        self, ws: ServerConnection, agent: AgentRef, router: BridgeRouter, options: SessionOptions
    ) -> None:
        self.ws = ws
        self.agent = agent
        self.router = router
        self.options = options
        self.limits = options.limits
        self.session_id = uuid.uuid4().hex
        self.started_monotonic = time.monotonic()
        #: The call's trace: its trace id is shared by every service's spans of this session.
        self.trace = IngressTrace(self.session_id)
        self.end_reason = ""
        self.out = OutboundQueue(self.limits.max_outbound_audio_ms, self.limits.max_outbound_events)
        self.guard = SessionGuard(self.limits, self.started_monotonic)
        self._finished = asyncio.Event()
        self._close_code = CLOSE_NORMAL
        self._notify_bridge = True
        self._start: proto.SessionStartRequest | None = None
        self._placement: Placed | None = None
        self._call: grpc.aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame] | None = None
        self._uplink: BridgeUplink | None = None
        self._in_seq = 0
        self._bridge_task: asyncio.Task[None] | None = None
        self._in_fmt_pb = pb.AudioFormat()
        self._relay: AgentRelay | None = None

    # ------------------------------------------------------------------------------------------------ run

    async def run(self) -> None:
        """Serve the session to its end (see class docstring)."""
        writer = asyncio.create_task(self._write_loop(), name=f"ingress-writer-{self.session_id}")
        reader = asyncio.create_task(self._read_loop(), name=f"ingress-reader-{self.session_id}")
        ticker = asyncio.create_task(self._tick_loop(), name=f"ingress-ticker-{self.session_id}")
        try:
            await self._finished.wait()
        finally:
            reader.cancel()
            ticker.cancel()
            await self._end_bridge()
            self.out.put_event(
                proto.dumps(proto.session_ended_event(self.end_reason, self.out.dropped_audio_frames))
            )
            self.out.put_close(self._close_code, self.end_reason)
            try:
                await asyncio.wait_for(asyncio.shield(writer), WRITER_FLUSH_S)
            except TimeoutError:
                writer.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(self._close_code, self.end_reason), WRITER_FLUSH_S)
            await _reap(reader, ticker, writer)
            await self._settle_call()
            if self._placement is not None:
                self._placement.release()
            log.info(
                "session %s agent %s ended: %s (dropped_audio_frames=%d)",
                self.session_id,
                self.agent,
                self.end_reason,
                self.out.dropped_audio_frames,
            )

    def finish(
        self,
        reason: str,
        error: RealtimeError | None = None,
        *,
        close_code: int = CLOSE_NORMAL,
        notify_bridge: bool = True,
    ) -> None:
        """End the session (idempotent): send ``error`` (if any) now, then the bridge gets an ``EndFrame``
        (when ``notify_bridge``) and the caller ``session.ended`` {reason} and a close with ``close_code``."""
        if self._finished.is_set():
            return
        self.end_reason = reason
        self._close_code = close_code
        self._notify_bridge = notify_bridge
        if error is not None:
            self._send_event(proto.error_event(error))
        self._finished.set()

    def finish_for_drain(self) -> None:
        """The ingress is shutting down: tell the caller to reconnect (retryable) and end the session."""
        self.finish(
            REASON_SHUTDOWN,
            RealtimeUnavailableError(
                "this ingress is shutting down; reconnect to continue",
                code="reconnect",
                retryable=True,
                fatal=True,
            ),
            close_code=CLOSE_RESTART,
        )

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    # ------------------------------------------------------------------------------------------ caller in

    async def _read_loop(self) -> None:
        try:
            async for message in self.ws:
                METRICS.frames_in.inc()
                allowed, rate_error = self.guard.admit(time.monotonic())
                if rate_error is not None:
                    self._send_event(proto.error_event(rate_error))
                if not allowed:
                    continue
                try:
                    if isinstance(message, bytes):
                        await self._on_audio(message)
                    else:
                        await self._on_text(message)
                except RealtimeError as err:
                    if err.fatal:
                        self.finish(err.code, err)
                        return
                    self._send_event(proto.error_event(err))
                if self._finished.is_set():
                    return
        except ConnectionClosed:
            pass
        self.finish(REASON_DISCONNECTED, notify_bridge=True)

    async def _on_audio(self, data: bytes) -> None:
        if self._start is None:
            raise RealtimeProtocolError(
                "audio received before session.start; send session.start first", code="audio_before_start"
            )
        self.guard.check_audio(data, self._start.input_format)
        self._in_seq += 1
        frame = pb.AudioFrame(
            data=data,
            format=self._in_fmt_pb,
            sequence=self._in_seq,
            capture_ts_ms=time.time_ns() // 1_000_000,
        )
        await self._to_bridge(pb.ClientFrame(audio=frame))

    async def _on_text(self, text: str) -> None:
        self.guard.check_text(text)
        event = proto.parse_client_event(text)
        if event.start is not None:
            if self._start is not None:
                raise RealtimeProtocolError("the session has already started", code="already_started")
            await self._begin(event.start)
            return
        if event.type == "session.end":
            self.finish(REASON_HANGUP)
            return
        if self._start is None:
            raise RealtimeProtocolError(
                f"{event.type} received before session.start; send session.start first", code="not_started"
            )
        if event.type in ("text", "turn.end") and self._relay is not None:
            self._relay.turn_ended()
        assert event.frame is not None
        await self._to_bridge(event.frame)

    # ---------------------------------------------------------------------------------------- bridge leg

    async def _begin(self, start: proto.SessionStartRequest) -> None:
        self._start = start
        self._in_fmt_pb = start.input_format.to_proto()
        self._relay = AgentRelay(self.out, start.output_format, self._send_event)
        self.out.bytes_per_ms = start.output_format.bytes_per_ms
        metadata = dict(self.options.metadata)
        metadata.update({f"client.{k}": v for k, v in start.metadata.items()})
        session_start = pb.SessionStart(
            session_id=self.session_id,
            agent_namespace=self.agent.namespace,
            agent_name=self.agent.name,
            input_format=start.input_format.to_proto(),
            output_format=start.output_format.to_proto(),
            overrides_json=start.overrides_json,
            started_unix_ns=time.time_ns(),
            metadata=metadata,
            traceparent=self.trace.traceparent,
        )
        connect_t0 = now_ns()
        try:
            placed = await self.router.place(self.agent, session_start, self.options.ready_timeout_s)
        except RealtimeError as err:
            self.finish(_placement_reason(err), err, close_code=CLOSE_TRY_AGAIN, notify_bridge=False)
            return
        self._placement, self._call = placed, placed.call
        self._uplink = BridgeUplink(placed.call, start.input_format.bytes_per_ms, self._uplink_failed)
        self.session_id = placed.session_id
        for frame in placed.early:
            self._relay.relay(frame)
        if placed.ready is None:
            end = placed.end or pb.EndFrame()
            self.finish(_bridge_end_reason(end, REASON_BRIDGE_REFUSED), notify_bridge=False)
            return
        ready = placed.ready
        span = self.trace.connect_span(connect_t0, now_ns(), bridge=placed.endpoint.address, ok=True)
        await self._to_bridge(pb.ClientFrame(span=span.to_proto()))
        log.info(
            "session %s agent %s started on %s (provider=%s, %s in / %s out)",
            self.session_id,
            self.agent,
            placed.endpoint.address,
            ready.provider,
            start.input_format.name,
            start.output_format.name,
        )
        started = proto.session_started_event(self.session_id, ready, start, self.limits.public())
        started["trace_id"] = self.trace.trace_id  # what to quote when asking about this call
        self._send_event(started)
        self._bridge_task = asyncio.create_task(self._bridge_loop(), name=f"ingress-bridge-{self.session_id}")

    async def _bridge_loop(self) -> None:
        assert self._call is not None
        try:
            while True:
                frame = await _read(self._call)
                if frame is None:
                    if not self._finished.is_set():
                        self._bridge_failed(
                            f"the bridge of agent {self.agent} closed the session unexpectedly"
                        )
                    return
                if frame.WhichOneof("frame") == "end":
                    self.finish(_bridge_end_reason(frame.end, REASON_INTERNAL), notify_bridge=False)
                    return
                assert self._relay is not None
                self._relay.relay(frame)
        except grpc.aio.AioRpcError as err:
            if not self._finished.is_set():
                self._bridge_failed(_rpc_message(err, self.agent))
        except OutboundOverflow as err:
            self.finish(
                REASON_SLOW_CONSUMER,
                RealtimeLimitError(str(err), code=REASON_SLOW_CONSUMER, fatal=True),
                close_code=CLOSE_POLICY,
            )
        except Exception:
            log.exception("session %s: relaying bridge frames failed", self.session_id)
            self.finish(
                REASON_INTERNAL,
                RealtimeError(
                    "the ingress failed relaying the agent; call again", fatal=True, retryable=True
                ),
                close_code=CLOSE_INTERNAL,
            )

    def _bridge_failed(self, message: str, code: str = REASON_BRIDGE_LOST) -> None:
        err = RealtimeUnavailableError(message, code=code, retryable=True, fatal=True)
        self.finish(REASON_BRIDGE_LOST, err, close_code=CLOSE_TRY_AGAIN, notify_bridge=False)

    async def _to_bridge(self, frame: pb.ClientFrame) -> None:
        """Queue ``frame`` for the bridge; waits only while the uplink's backlog is full."""
        if self._uplink is None or self._finished.is_set():
            return
        self._uplink.put(frame)
        await self._uplink.wait_for_room()

    def _uplink_failed(self, err: BaseException) -> None:
        if self._finished.is_set():
            return
        if isinstance(err, grpc.aio.AioRpcError):
            self._bridge_failed(_rpc_message(err, self.agent))
        else:
            self._bridge_failed(f"the bridge of agent {self.agent} stopped reading the session")

    async def _end_bridge(self) -> None:
        """Send ``EndFrame`` (if we end the session), half-close, and wait a little for the bridge's end."""
        call, uplink = self._call, self._uplink
        if call is None or uplink is None:
            return
        last: list[pb.ClientFrame] = []
        if not call.done():
            # Our session span goes to the archive through the bridge, also when the bridge ended the
            # session: it reads on after its EndFrame until we half-close.
            root = self.trace.session_span(
                now_ns(),
                agent=str(self.agent),
                end_reason=self.end_reason,
                dropped_audio_frames=self.out.dropped_audio_frames,
            )
            last = [pb.ClientFrame(span=root.to_proto())]
            if self._notify_bridge:
                end = end_frame(from_wire_name(self.end_reason))
                end.agent_audio_frames_dropped = self.out.dropped_audio_frames
                last.append(pb.ClientFrame(end=end))
        # What the caller sent before the end is written first; the bridge then ends the session as
        # caller_disconnected if this times out.
        if not call.done() and not await uplink.finish(last, BRIDGE_END_WAIT_S) and self._notify_bridge:
            log.warning("session %s: could not send the end (%s) to the bridge",
                        self.session_id, self.end_reason)  # fmt: skip
        await uplink.aclose()
        if self._bridge_task is not None and not self._bridge_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._bridge_task), BRIDGE_END_WAIT_S)
            except TimeoutError:
                self._bridge_task.cancel()
            await _reap(self._bridge_task)

    async def _settle_call(self) -> None:
        """Let the bridge finish its side (it archives the session before its handler returns): wait for the
        RPC status up to ``BRIDGE_SETTLE_S`` before cancelling — cancelling at once would cut that short."""
        call = self._call
        if call is None:
            return
        if not call.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.code(), BRIDGE_SETTLE_S)
        call.cancel()

    # ------------------------------------------------------------------------------------------ caller out

    def _send_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "error":
            METRICS.error(event["kind"])
        try:
            self.out.put_event(proto.dumps(event))
        except OutboundOverflow as err:
            if not self._finished.is_set():
                self.out.drop_audio()
                self.finish(
                    REASON_SLOW_CONSUMER,
                    RealtimeLimitError(str(err), code=REASON_SLOW_CONSUMER, fatal=True),
                    close_code=CLOSE_POLICY,
                )

    async def _write_loop(self) -> None:
        try:
            while True:
                item = await self.out.get()
                if isinstance(item, Close):
                    return
                await self.ws.send(item)
                METRICS.frames_out.inc()
        except ConnectionClosed:
            return

    async def _tick_loop(self) -> None:
        step = max(0.05, min(1.0, self.limits.idle_timeout_s / 4, self.limits.max_session_s / 4))
        while not self._finished.is_set():
            await asyncio.sleep(step)
            expired = self.guard.expired(time.monotonic())
            if expired is not None:
                self.finish(expired[0], expired[1])


async def _read(call: grpc.aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame]) -> pb.ServerFrame | None:
    """The next bridge frame, ``None`` at the end of the stream (``grpc.aio.EOF``)."""
    frame = await call.read()
    return frame if isinstance(frame, pb.ServerFrame) else None


def _rpc_message(err: grpc.aio.AioRpcError, agent: AgentRef) -> str:
    return f"lost the connection to the bridge of agent {agent} ({err.code().name.lower()})"


async def _reap(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _placement_reason(err: RealtimeError) -> str:
    """The end reason of a session no bridge took: refused (full), unreachable, or lost."""
    if err.code in (FULL_CODE, INTERNAL_AUTH_CODE):
        return REASON_BRIDGE_REFUSED
    return REASON_UNREACHABLE if err.code == REASON_UNREACHABLE else REASON_BRIDGE_LOST


def _bridge_end_reason(end: pb.EndFrame, default: str) -> str:
    """The wire name of the bridge's end reason, ``default`` when the bridge gave none."""
    return wire_name(end.reason) if end.reason != pb.END_REASON_UNSPECIFIED else default
