"""Gemini Live (BidiGenerateContent) behind the provider interface (protocols.md §B, issue #4).

One :class:`GeminiProvider` is one logical conversation that may span several WebSocket connections:

* ``connect`` opens the socket (``x-goog-api-key`` header, ``compression=None``, generous ping timeout),
  sends ``setup`` (``gemini_setup.build_setup``) and waits for ``setupComplete`` before any audio.
* Caller audio (PCM16 16 kHz) goes out as ``realtimeInput.audio``; server messages are translated by
  ``gemini_turns.GeminiTurnTracker`` into neutral frames read from :meth:`GeminiProvider.events`.
* Continuity: the newest resumable handle is kept. On ``goAway`` (when the current turn is done, at the
  latest shortly before the deadline), on a steer (after ``turnComplete``) or on an unexpected close the
  old socket is closed first, then a new one resumes with the handle and the (new) ``setup``; caller
  audio is held in a bounded backlog meanwhile and sent after ``setupComplete``. Without a handle the
  transcript history is replayed as ``clientContent`` text turns.
* Errors arrive only as close codes; ``gemini_errors.classify_close`` maps them to typed failures. Fatal
  ones come out of ``events`` as ``error`` (``fatal=True``) then ``end``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rtvoice.bridge.steering import plan_steer
from rtvoice.core.audio import PCM16_16K, PCM16_24K, validate_frame
from rtvoice.core.errors import (
    RealtimeError,
    RealtimeLimitError,
    RealtimeProtocolError,
    RealtimeProviderError,
)
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb

from .base import RealtimeProvider
from .gemini_backlog import MessageBacklog
from .gemini_codec import (
    activity_message,
    audio_message,
    audio_stream_end_message,
    decode_server_message,
    encode,
    history_message,
    text_message,
    tool_response_message,
)
from .gemini_connection import open_connection, received_close
from .gemini_errors import classify_close
from .gemini_setup import build_setup, is_gemini3, websocket_url
from .gemini_turns import GeminiTurnTracker
from .reconnect import backoff_delays_s

log = logging.getLogger(__name__)

#: On ``goAway`` reconnect at the latest this long before the deadline (or at half the time left).
GO_AWAY_MARGIN_MS = 5000
CLOSE_WAIT_S = 2.0
RECONNECT_BASE_S = 0.1


@dataclass(slots=True)
class GeminiStats:
    """Counters of one provider conversation (for spans, logs and benchmarks)."""

    connections: int = 0
    #: wall time from the old socket going out of service to the new one accepting audio, per reconnect
    reconnect_gaps_ms: list[float] = field(default_factory=list)
    reconnect_reasons: list[str] = field(default_factory=list)
    audio_bytes_sent: int = 0
    audio_bytes_received: int = 0
    backlog_dropped_bytes: int = 0


class GeminiProvider(RealtimeProvider):
    """Gemini Live conversation. ``base_url`` (tests, proxies) overrides ``settings.base_url`` and the
    default endpoint; a URL without a path gets the BidiGenerateContent path."""

    name = "gemini"
    input_format = PCM16_16K
    output_format = PCM16_24K

    def __init__(self, settings: AgentSettings, api_key: str | None, base_url: str | None = None) -> None:
        super().__init__(settings, api_key)
        self.url = websocket_url(base_url or settings.base_url)
        self.stats = GeminiStats()
        self._tracker = GeminiTurnTracker(transcripts=settings.modalities == "audio_text")
        self._events: asyncio.Queue[pb.ServerFrame] = asyncio.Queue()
        self._backlog = MessageBacklog(PCM16_16K.bytes_for_ms(settings.session.reconnect_buffer_ms))
        self._send_lock = asyncio.Lock()
        self._ws: ClientConnection | None = None
        self._live = False
        self._handle: str | None = None
        self._next_settings: AgentSettings | None = None
        self._reconnect_why: str | None = None
        self._go_away_timer: asyncio.TimerHandle | None = None
        self._out_of_service_at = 0.0
        self._activity_open = False
        self._overflow_reported = False
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._ended = False

    # -- RealtimeProvider -----------------------------------------------------------------------------
    async def connect(self) -> None:
        ws = await self._open(None)
        async with self._send_lock:
            await self._go_live(ws, replay=False)
        self._supervisor = asyncio.create_task(self._run(), name="gemini-provider")

    async def events(self) -> AsyncIterator[pb.ServerFrame]:
        while True:
            frame = await self._events.get()
            yield frame
            if frame.HasField("end"):
                return

    async def send_audio(self, data: bytes) -> None:
        if self._ended or not data:
            return
        validate_frame(data, self.input_format)
        async with self._send_lock:
            if self._manual and not self._activity_open:
                await self._send_locked(encode(activity_message(True)))
                self._activity_open = True
                self._emit(self._tracker.speech_started())
            await self._send_locked(encode(audio_message(data, self.input_format.sample_rate_hz)), len(data))

    async def end_turn(self) -> None:
        if self._ended:
            return
        async with self._send_lock:
            if not self._manual:
                await self._send_locked(encode(audio_stream_end_message()))
            elif self._activity_open:
                await self._send_locked(encode(activity_message(False)))
                self._activity_open = False
                self._emit(self._tracker.speech_stopped())

    async def send_text(self, text: str) -> None:
        if self._ended or not text:
            return
        self._tracker.note_user_text(text)
        realtime = is_gemini3(self.settings.effective_model)
        async with self._send_lock:
            await self._send_locked(encode(text_message(text, realtime=realtime)))

    async def interrupt(self, item_id: str | None, played_ms: int | None) -> None:
        # No truncate on Gemini: the server keeps what it sent. Drop the rest locally; in manual mode
        # opening the caller's turn (activityStart) is what stops the generation on the server.
        self._tracker.client_interrupt()
        self._tracker.heard(item_id, played_ms)
        if self._manual and not self._ended:
            async with self._send_lock:
                if not self._activity_open:
                    await self._send_locked(encode(activity_message(True)))
                    self._activity_open = True
                    self._emit(self._tracker.speech_started())

    async def steer(self, steer: pb.SteerFrame) -> None:
        """Every change is a reconnect with the resumption handle and a new ``setup`` (§B.6), made when
        the current turn is over (``turnComplete``, no pending tool call); changes in between merge."""
        plan, _ = plan_steer(steer, temperature_supported=True)
        if not plan:
            return
        base = self._next_settings or self.settings
        update = {k: v for k, v in asdict(plan).items() if v is not None}
        try:
            new = AgentSettings.model_validate({**base.model_dump(), **update})
        except ValidationError as err:
            msg = err.errors()[0]["msg"]
            raise RealtimeProtocolError(f"invalid steer: {msg}", code="invalid_steer") from None
        if self._ws is None:
            self.settings = new
            return
        self._next_settings = new
        if not self._tracker.busy:
            self._request_reconnect("steer")

    async def send_tool_result(self, result: pb.ToolResult) -> None:
        name = self._tracker.pending_calls.get(result.call_id)
        if name is None or self._ended:
            log.info("dropping result of tool call %s: cancelled or unknown", result.call_id)
            return
        self._tracker.tool_result_sent(result.call_id)
        msg = tool_response_message(result.call_id, result.name or name, result.output, result.is_error)
        async with self._send_lock:
            await self._send_locked(encode(msg))

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._live = False
        if self._go_away_timer is not None:
            self._go_away_timer.cancel()
        ws = self._ws
        if ws is not None:
            await ws.close()
        sup = self._supervisor
        if sup is not None:
            _, pending = await asyncio.wait({sup}, timeout=CLOSE_WAIT_S)
            for task in pending:  # still opening a new connection: abandon it
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._end("closed")

    # -- connection ------------------------------------------------------------------------------------
    @property
    def _manual(self) -> bool:
        return self.settings.turn_detection.type == "none"

    async def _open(self, handle: str | None) -> ClientConnection:
        """A new connection (resuming ``handle`` when given) past ``setupComplete``; typed errors."""
        self.stats.connections += 1
        replay = handle is None and bool(self._tracker.history.replay())
        setup = build_setup(self.settings, resumption_handle=handle, initial_history=replay)
        return await open_connection(self.url, self.api_key, setup, self._handle_message)

    async def _go_live(self, ws: ClientConnection, *, replay: bool) -> None:
        """With the send lock held: replay history (no handle), flush the backlog, accept live audio."""
        turns = self._tracker.history.replay() if replay else []
        if turns:
            roles = {"assistant": "model"}
            await ws.send(encode(history_message([(roles.get(r, r), t) for r, t in turns])))
        if self._activity_open and not self._backlog.first_is(encode(activity_message(True))):
            await ws.send(encode(activity_message(True)))
        while len(self._backlog):
            text, nbytes = self._backlog.peek()
            await ws.send(text)
            self._backlog.pop()
            self.stats.audio_bytes_sent += nbytes
        self._ws = ws
        self._live = True
        self._overflow_reported = False

    async def _send_locked(self, text: str, audio_bytes: int = 0) -> None:
        """With the send lock held: send now when live, else hold in the backlog (bounded for audio)."""
        if self._live and self._ws is not None:
            try:
                await self._ws.send(text)
                self.stats.audio_bytes_sent += audio_bytes
                return
            except ConnectionClosed:
                self._live = False
        dropped = self._backlog.add(text, audio_bytes)
        if dropped:
            self.stats.backlog_dropped_bytes += dropped
            if not self._overflow_reported:
                self._overflow_reported = True
                err = RealtimeLimitError(
                    f"reconnect buffer full ({self.settings.session.reconnect_buffer_ms} ms): "
                    "oldest caller audio dropped",
                    code="reconnect_buffer_overflow",
                    retryable=True,
                )
                self._emit(pb.ServerFrame(error=err.to_frame()))

    def _handle_message(self, raw: str | bytes) -> bool:
        """Translate one server frame, emit its frames, act on control; returns ``setupComplete``."""
        try:
            msg = decode_server_message(raw)
        except RealtimeError as err:
            self._emit(pb.ServerFrame(error=err.to_frame()))
            return False
        step = self._tracker.handle(msg)
        for frame in step.frames:
            if frame.HasField("audio"):
                self.stats.audio_bytes_received += len(frame.audio.data)
            self._emit(frame)
        if step.handle:
            self._handle = step.handle
        if step.go_away_ms is not None:
            self._on_go_away(step.go_away_ms)
        if step.turn_complete and not self._tracker.busy:
            if self._next_settings is not None:
                self._request_reconnect("steer")
            elif self._go_away_timer is not None:
                self._request_reconnect("go_away")
        return step.setup_complete

    def _on_go_away(self, time_left_ms: int) -> None:
        log.info("Gemini goAway: %d ms left on this connection", time_left_ms)
        if not self._tracker.busy:
            self._request_reconnect("go_away")
            return
        delay_s = max(0, time_left_ms - min(GO_AWAY_MARGIN_MS, time_left_ms // 2)) / 1000
        if self._go_away_timer is None:
            self._go_away_timer = asyncio.get_running_loop().call_later(
                delay_s, self._request_reconnect, "go_away"
            )

    def _request_reconnect(self, why: str) -> None:
        """Take the current socket out of service and close it; ``_run`` then resumes on a new one."""
        if self._reconnect_why is not None or self._closing or self._ended or self._ws is None:
            return
        self._reconnect_why = why
        if self._go_away_timer is not None:
            self._go_away_timer.cancel()
            self._go_away_timer = None
        self._live = False
        self._out_of_service_at = time.monotonic()
        task = asyncio.create_task(self._ws.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, ws: ClientConnection) -> tuple[int | None, str]:
        """Process server frames until the socket closes; returns the received close code and reason."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._handle_message(raw)
        return received_close(ws)

    async def _run(self) -> None:
        """Read the current connection; on its end reconnect (planned or unexpected) or end the session."""
        try:
            while self._ws is not None:
                code, reason = await self._read(self._ws)
                if self._closing:
                    return
                # a turn cut by the close (or by the goAway deadline) never gets its turnComplete
                for frame in self._tracker.connection_lost():
                    self._emit(frame)
                why = self._reconnect_why
                if why is None:
                    outcome = classify_close(code, reason)
                    if not outcome.reconnect:
                        self._fail(outcome.error)
                        return
                    log.warning("Gemini connection lost (%s %s); resuming", code, reason)
                    self._live = False
                    self._out_of_service_at = time.monotonic()
                    why = "connection_lost"
                if not await self._reconnect(why, planned=self._reconnect_why is not None):
                    return
        except Exception as err:  # a bug must end the session visibly, not hang it
            log.exception("Gemini provider failed")
            self._fail(RealtimeError(f"Gemini provider failed: {err!r}", code="internal_error", fatal=True))

    async def _reconnect(self, why: str, *, planned: bool) -> bool:
        if self._next_settings is not None:
            self.settings = self._next_settings
            self._next_settings = None
        attempts = self.settings.session.reconnect_attempts
        attempts = max(1, attempts) if planned else attempts
        last: RealtimeError = RealtimeProviderError(
            "Gemini Live connection lost and reconnecting is disabled", code="connection_lost", fatal=True
        )
        for attempt, delay_s in enumerate(backoff_delays_s(attempts, base_s=RECONNECT_BASE_S)):
            await asyncio.sleep(delay_s)
            if self._closing:
                return False
            try:
                ws = await self._open(self._handle)
            except RealtimeError as err:
                last = err
                log.warning("Gemini reconnect attempt %d failed: %s", attempt + 1, err.message)
                if not err.retryable and err.code != "connection_lost":
                    break
                continue
            async with self._send_lock:
                try:
                    await self._go_live(ws, replay=self._handle is None)
                except ConnectionClosed:
                    continue
                self._reconnect_why = None
            gap_ms = (time.monotonic() - self._out_of_service_at) * 1000
            self.stats.reconnect_gaps_ms.append(gap_ms)
            self.stats.reconnect_reasons.append(why)
            log.info(
                "Gemini session resumed after %s in %.0f ms (handle=%s)", why, gap_ms, bool(self._handle)
            )
            return True
        last.fatal = True
        self._fail(last)
        return False

    # -- output ----------------------------------------------------------------------------------------
    def _emit(self, frame: pb.ServerFrame) -> None:
        if not self._ended:
            self._events.put_nowait(frame)

    def _fail(self, err: RealtimeError) -> None:
        err.fatal = True
        log.warning("Gemini session ends: %r", err)
        self._emit(pb.ServerFrame(error=err.to_frame()))
        self._end("provider_error")

    def _end(self, reason: str) -> None:
        if self._ended:
            return
        self._live = False
        self._emit(pb.ServerFrame(end=pb.EndFrame(reason=reason)))
        self._ended = True
