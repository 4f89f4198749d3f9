"""The OpenAI Realtime adapter (also the local engine, which speaks the GA protocol).

One logical conversation over one or more provider connections: a connection is replaced, with the
history replayed as text items, when it drops with a transient close code (bounded backoff, caller audio
buffered up to ``session.reconnect_buffer_ms``), when it reaches ``session.max_provider_session_s`` (at a
turn boundary), or when the voice changes after the assistant has spoken (OpenAI refuses that with
``cannot_update_voice``). Auth and quota failures end the conversation with their typed error.

Barge-in (§A.7): ``response.cancel`` while a response runs, ``conversation.item.truncate`` at
min(played, received) ms, ``conversation.item.delete`` at 0 ms; an epoch counter drops late deltas.
Steering (§C): instructions and voice wait for ``response.done``; turn detection applies at once;
temperature on GA is a non-fatal ``RealtimeUnsupportedError``. Tool outputs and text turns are followed
by ``response.create`` once no response is running (§A.8).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rtvoice.bridge.providers import openai_protocol as proto
from rtvoice.bridge.providers.base import RealtimeProvider
from rtvoice.bridge.providers.history import ConversationHistory
from rtvoice.bridge.providers.openai_events import EventTranslator
from rtvoice.bridge.providers.openai_ws import handshake, open_socket, parse_event, realtime_url
from rtvoice.bridge.providers.reconnect import AudioBacklog, backoff_delays_s
from rtvoice.bridge.steering import SteerPlan, plan_steer
from rtvoice.core.errors import RealtimeError, RealtimeProtocolError, RealtimeProviderError
from rtvoice.core.settings import AgentSettings, deep_merge
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger(__name__)


class OpenAIProvider(RealtimeProvider):
    """OpenAI Realtime over WebSocket, GA shape by default, beta when ``settings.api_shape == "beta"``.

    ``base_url`` overrides ``settings.base_url`` (default ``wss://api.openai.com/v1/realtime``).
    """

    connect_timeout_s = 10.0

    def __init__(self, settings: AgentSettings, api_key: str | None, base_url: str | None = None) -> None:
        super().__init__(settings, api_key)
        self.name = settings.provider
        self.shape: proto.Shape = settings.api_shape if settings.provider == "openai" else "ga"
        self.input_format, self.output_format = proto.provider_formats(settings)
        self.url = realtime_url(base_url or settings.base_url, settings.effective_model)
        self.voice = settings.effective_voice
        self.instructions = settings.instructions
        self.turn_detection = settings.turn_detection.model_copy()
        self.temperature = settings.temperature
        self.history = ConversationHistory()
        self._queue: asyncio.Queue[pb.ServerFrame] = asyncio.Queue()
        self._translator = EventTranslator(
            self.output_format, settings.modalities == "audio_text", self.history, self._queue.put_nowait
        )
        self.state = self._translator.state
        self._ws: ClientConnection | None = None
        self._switching = False
        self._backlog = AudioBacklog(self.input_format.bytes_for_ms(settings.session.reconnect_buffer_ms))
        self._deferred: list[str] = []
        self._pending_steer = SteerPlan()
        self._pending_tool_outputs: list[pb.ToolResult] = []
        self._want_response = False
        self._connected_at = 0.0
        self._closed = False
        self._ended = False
        self._fatal: RealtimeError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Count of provider connections opened (1 + reconnects + recycles + voice switches).
        self.connections = 0

    # -- lifecycle -------------------------------------------------------------------------------------

    async def connect(self) -> None:
        ws = await self._open()
        self._attach(ws)
        self._spawn(self._recycle_loop())

    async def _open(self) -> ClientConnection:
        session = proto.session_config(
            self.settings,
            self.shape,
            voice=self.voice,
            instructions=self.instructions,
            turn_detection=self.turn_detection,
            temperature=self.temperature,
            input_format=self.input_format,
            output_format=self.output_format,
            with_overrides=True,
        )
        ws = await open_socket(self.url, self.api_key, self.shape, self.connect_timeout_s)
        try:
            await handshake(ws, proto.session_update(session, self.shape), self.connect_timeout_s)
        except BaseException:
            await ws.close()
            raise
        self.connections += 1
        return ws

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.state.new_connection()
        self._connected_at = time.monotonic()
        self._spawn(self._read_loop(ws))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def events(self) -> AsyncIterator[pb.ServerFrame]:
        while True:
            frame = await self._queue.get()
            yield frame
            if frame.WhichOneof("frame") == "end":
                return

    async def close(self) -> None:
        self._closed = True
        ws, self._ws = self._ws, None
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if ws is not None:
            await ws.close()
        self._finish(None, "closed")

    def _finish(self, err: RealtimeError | None, reason: str) -> None:
        """Emit the final frames once: the fatal error (if any), then ``end``."""
        if self._ended:
            return
        self._ended = True
        if err is not None:
            err.fatal = True
            self._queue.put_nowait(pb.ServerFrame(error=err.to_frame()))
        self._queue.put_nowait(pb.ServerFrame(end=pb.EndFrame(reason=reason)))
        if not self._closed:
            self._closed = True
            ws, self._ws = self._ws, None
            if ws is not None:
                self._spawn(ws.close())

    def _emit_error(self, err: RealtimeError) -> None:
        self._queue.put_nowait(pb.ServerFrame(error=err.to_frame()))

    # -- receiving -------------------------------------------------------------------------------------

    async def _read_loop(self, ws: ClientConnection) -> None:
        beta = self.shape == "beta"
        try:
            async for raw in ws:
                try:
                    evt = parse_event(raw)
                except RealtimeError as err:
                    self._emit_error(err)
                    continue
                if beta:
                    evt["type"] = proto.BETA_EVENT_RENAMES.get(evt["type"], evt["type"])
                try:
                    typed = self._translator.handle(evt)
                except (KeyError, TypeError, ValueError) as err:  # a malformed event: report, keep going
                    typed = RealtimeProtocolError(
                        f"malformed provider event {evt['type']}: {type(err).__name__}: {err}",
                        code="bad_event",
                    )
                if typed is not None:
                    self._on_error(typed)
                if evt["type"] == "response.done":
                    await self._after_response_done()
        except ConnectionClosed:
            pass
        except Exception as err:  # a bug must end the conversation visibly, never hang it
            log.exception("provider read loop failed")
            self._finish(
                RealtimeProviderError(f"provider adapter failed: {err}", code="adapter_error"),
                "provider_error",
            )
            return
        if ws is not self._ws or self._closed:
            return  # retired connection or our own close
        self._on_lost(ws.close_code, ws.close_reason or "")

    def _on_error(self, err: RealtimeError) -> None:
        if err.fatal:
            self._fatal = err  # the close that follows ends the conversation with this error
            self._finish(err, "provider_error")
        else:
            self._emit_error(err)

    def _on_lost(self, code: int | None, reason: str) -> None:
        fatal = self._fatal or proto.classify_close(code, reason)
        if fatal is not None:
            self._finish(fatal, "provider_error")
            return
        log.warning("provider connection closed (code %s %s); reconnecting", code, reason)
        self._emit_error(
            RealtimeProviderError(
                f"provider connection closed (code {code}); reconnecting",
                code="provider_reconnecting",
                retryable=True,
            )
        )
        if self.state.active_response_id is not None:
            rid, self.state.active_response_id = self.state.active_response_id, None
            self._queue.put_nowait(
                pb.ServerFrame(
                    response_done=pb.ResponseDone(
                        response_id=rid, status="incomplete", status_reason="provider_disconnected"
                    )
                )
            )
        self._ws = None
        self._spawn(self._switch("reconnect", self.settings.session.reconnect_attempts))

    async def _switch(self, why: str, attempts: int) -> None:
        """Replace the provider connection and replay the history; audio and control events wait."""
        if self._switching or self._closed:
            return
        self._switching = True
        old, self._ws = self._ws, None
        if old is not None:
            await old.close()
        last: RealtimeError | None = None
        ws: ClientConnection | None = None
        for delay in backoff_delays_s(attempts):
            await asyncio.sleep(delay)
            if self._closed:
                return
            try:
                ws = await self._open()
                break
            except RealtimeError as err:
                last = err
                log.warning("provider %s attempt failed: %s", why, err.message)
                if err.fatal or not err.retryable:
                    break
        if ws is None:
            self._switching = False
            self._finish(
                last or RealtimeProviderError(f"provider {why} failed", code="reconnect_failed"),
                "provider_error",
            )
            return
        if self._closed:
            await ws.close()
            return
        await self._replay(ws)
        self._attach(ws)
        self._switching = False
        for chunk in self._backlog.drain():
            await self.send_audio(chunk)
        deferred, self._deferred = self._deferred, []
        for text in deferred:
            await self._send(text)
        if not self.state.busy:
            await self._after_response_done()  # tool outputs / text turns that waited for the switch
        log.info("provider connection replaced (%s); %d history items replayed", why, len(self.history))

    async def _replay(self, ws: ClientConnection) -> None:
        items = self.history.replay()
        fresh = ConversationHistory()
        for role, text in items:
            item_id = proto.new_item_id()
            fresh.set_text(item_id, role, text)
            await ws.send(proto.message_item(role, text, self.shape, item_id))
        self.history.replace_with(fresh)

    async def _recycle_loop(self) -> None:
        max_age = float(self.settings.session.max_provider_session_s)
        while not self._closed:
            await asyncio.sleep(min(1.0, max_age / 10))
            if self._switching or self._ws is None or time.monotonic() - self._connected_at < max_age:
                continue
            if not self.state.busy and not self.state.user_speaking and not self._pending_tool_outputs:
                await self._switch("recycle", max(1, self.settings.session.reconnect_attempts))

    # -- sending ---------------------------------------------------------------------------------------

    async def _send(self, text: str) -> None:
        ws = self._ws
        if ws is None or self._switching:
            self._deferred.append(text)
            return
        try:
            await ws.send(text)
        except ConnectionClosed:
            self._deferred.append(text)

    async def send_audio(self, data: bytes) -> None:
        ws = self._ws
        if ws is None or self._switching:
            self._backlog.push(data)
            return
        try:
            await ws.send(proto.append_audio(base64.b64encode(data).decode("ascii")))
        except ConnectionClosed:
            self._backlog.push(data)

    async def _request_response(self) -> None:
        if self.state.busy:
            self._want_response = True
            return
        self._want_response = False
        self.state.response_requested = True
        await self._send(proto.RESPONSE_CREATE)

    async def _after_response_done(self) -> None:
        if self._pending_steer:
            plan, self._pending_steer = self._pending_steer, SteerPlan()
            await self._apply(plan)
        if self._pending_tool_outputs:
            await self._flush_tool_outputs()
        elif self._want_response:
            await self._request_response()

    async def end_turn(self) -> None:
        await self._send(proto.COMMIT)
        await self._request_response()

    async def send_text(self, text: str) -> None:
        item_id = proto.new_item_id()
        self.history.set_text(item_id, "user", text)
        await self._send(proto.message_item("user", text, self.shape, item_id))
        await self._request_response()

    async def send_tool_result(self, result: pb.ToolResult) -> None:
        self._pending_tool_outputs.append(result)
        if not self.state.busy:
            await self._flush_tool_outputs()

    async def _flush_tool_outputs(self) -> None:
        outputs, self._pending_tool_outputs = self._pending_tool_outputs, []
        for result in outputs:
            await self._send(proto.function_call_output(result.call_id, result.output))
        await self._request_response()

    async def interrupt(self, item_id: str | None, played_ms: int | None) -> None:
        st = self.state
        st.epoch += 1  # deltas of the response running now are dropped from here on
        if st.busy:
            await self._send(proto.response_cancel(st.active_response_id))
        if not item_id or item_id in st.truncated or item_id not in st.item_bytes:
            return
        st.truncated.add(item_id)
        received_ms = int(self.output_format.duration_ms(st.item_bytes[item_id]))
        end_ms = received_ms if played_ms is None else max(0, min(played_ms, received_ms))
        if end_ms > 0:
            await self._send(proto.truncate(item_id, st.item_content_index.get(item_id, 0), end_ms))
            self.history.truncate(item_id, end_ms / received_ms)
        else:
            await self._send(proto.delete_item(item_id))
            self.history.remove(item_id)

    # -- steering --------------------------------------------------------------------------------------

    async def steer(self, steer: pb.SteerFrame) -> None:
        plan, unsupported = plan_steer(steer, temperature_supported=self.shape == "beta")
        immediate, deferred = plan.split()
        if immediate:
            await self._apply(immediate)
        if deferred:
            if self.state.busy:
                self._pending_steer = self._pending_steer.merged(deferred)
            else:
                await self._apply(deferred)
        if unsupported is not None:
            raise unsupported

    async def _apply(self, plan: SteerPlan) -> None:
        """Send what ``plan`` changes; a voice change after assistant audio opens a new session."""
        partial: dict[str, Any] = {}
        if plan.turn_detection is not None:
            self.turn_detection = plan.turn_detection
            partial = deep_merge(partial, proto.partial_turn_detection(plan.turn_detection, self.shape))
        if plan.temperature is not None:
            self.temperature = plan.temperature
            partial["temperature"] = proto.clamp_beta_temperature(plan.temperature)
        if plan.instructions is not None:
            self.instructions = plan.instructions
            partial["instructions"] = plan.instructions
        if plan.voice is not None and plan.voice != self.voice:
            self.voice = plan.voice
            if self.state.assistant_audio_present:
                self._spawn(self._switch("voice change", max(1, self.settings.session.reconnect_attempts)))
                return  # the new session gets every field from the start
            partial = deep_merge(partial, proto.partial_voice(plan.voice, self.shape))
        if partial:
            await self._send(proto.session_update(partial, self.shape))
