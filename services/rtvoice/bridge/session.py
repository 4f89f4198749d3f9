"""One bridge session: a caller's ``Converse`` stream ⇄ one provider conversation.

Caller frames go to the provider (audio validated and converted to the provider's input format with a
low-delay streaming ``AudioConverter``); provider frames go to the caller (agent audio converted to the
caller's output format, the resampler tail flushed at the end of each item and dropped on barge-in).
Barge-in (provider ``speech_started`` while the agent is audible, or the caller's ``InterruptFrame``)
sends ``ClearAudio`` at once, then asks the provider to cancel and truncate at the played position.
Tool calls run in :class:`~rtvoice.bridge.tools.ToolRuntime`. Frames to the caller go through a
:class:`~rtvoice.bridge.outbox.CallerOutbox` (one writer; nothing else waits on gRPC). A copy of every frame
in both directions and the session's spans go to the recorder sink, which never blocks the voice loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from rtvoice.bridge.config import SessionConfig
from rtvoice.bridge.outbox import CallerOutbox, RecorderSink, Writer
from rtvoice.bridge.playback import PlaybackTracker
from rtvoice.bridge.providers.base import RealtimeProvider
from rtvoice.bridge.steering import turn_detection_from_proto
from rtvoice.bridge.tools import ToolRuntime
from rtvoice.core.audio import AudioConverter, validate_frame
from rtvoice.core.errors import (
    ERROR_KIND_NAMES,
    RealtimeAudioFormatError,
    RealtimeError,
    RealtimeProtocolError,
    RealtimeProviderError,
)
from rtvoice.core.spans import SessionTracer, now_ns
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger(__name__)

__all__ = ["BridgeSession", "RecorderSink", "Writer"]

#: Largest merged agent audio frame when the caller writer falls behind (see ``outbox``).
MAX_MERGED_AUDIO_MS = 200


#: Frame kinds whose spans are made elsewhere (response, error, barge_in, tool.call) or not at all.
_SPANNED_ELSEWHERE = frozenset({"audio", "playback_mark", "response_done", "error", "end"})


class BridgeSession:
    """Runs one session; create it after ``SessionStart`` was accepted, then ``await run(requests)``."""

    def __init__(
        self,
        *,
        session_id: str,
        config: SessionConfig,
        provider: RealtimeProvider,
        recorder: RecorderSink,
        tracer: SessionTracer,
        write: Writer,
    ) -> None:
        self.session_id = session_id
        self.config = config
        self.provider = provider
        self.recorder = recorder
        self.tracer = tracer
        self._in_fmt_key = (config.caller_input.to_proto().encoding, config.caller_input.sample_rate_hz)
        self._in_conv = AudioConverter(config.caller_input, provider.input_format)
        self._out_conv = AudioConverter(provider.output_format, config.caller_output)
        self._out_item: str | None = None
        self._out_content_index = 0
        self.playback = PlaybackTracker(config.caller_output)
        self.outbox = CallerOutbox(
            write,
            recorder,
            self.playback,
            config.caller_output.to_proto(),
            config.caller_output.bytes_for_ms(MAX_MERGED_AUDIO_MS),
        )
        self.response_active = False
        #: turnDetection.interruptResponse: provider VAD speech cuts the agent off
        self.vad_interrupts = config.settings.turn_detection.interrupt_response
        self._response_t0: dict[str, int] = {}
        self._tool_t0: dict[str, int] = {}
        self._first_audio_ns: int | None = None
        self.tools = ToolRuntime(config.settings.tools, self._on_tool_result)
        self._stop = asyncio.Event()
        self._stop_error: RealtimeError | None = None
        self._stop_reason = ""
        self.end_reason = ""

    # -- output ----------------------------------------------------------------------------------------

    async def send(self, frame: pb.ServerFrame) -> None:
        """Queue ``frame`` for the caller (recorded when written; never waits on gRPC)."""
        self.outbox.put(frame)

    async def report(self, err: RealtimeError) -> None:
        """A typed failure: ``ErrorFrame`` to the caller, an ``error`` span to the errors sink."""
        frame = err.to_frame()
        self._error_span(frame)
        await self.send(pb.ServerFrame(error=frame))

    def _error_span(self, frame: pb.ErrorFrame) -> None:
        self.recorder.record_span(
            self.tracer.event(
                "error",
                kind=ERROR_KIND_NAMES.get(frame.kind, "unspecified"),
                code=frame.code,
                message=frame.message,
                retryable=frame.retryable,
                fatal=frame.fatal,
            )
        )

    def _flush_item(self) -> None:
        item, self._out_item = self._out_item, None
        if item is not None:
            tail = self._out_conv.flush()
            if tail:
                self.outbox.put_audio(tail, item, self._out_content_index)

    # -- run -------------------------------------------------------------------------------------------

    async def run(self, requests: AsyncIterator[pb.ClientFrame]) -> str:
        """Connect the provider, answer ``ready``, relay until either side ends; returns the end reason."""
        reason = "caller_hangup"
        tasks: list[asyncio.Task[Any]] = []
        writer = asyncio.create_task(self.outbox.run())
        try:
            if not await self._connect():
                reason = "provider_error"
                return reason
            reader = asyncio.create_task(self._read_client(requests))
            pump = asyncio.create_task(self._pump())
            stop = asyncio.create_task(self._stop.wait())
            tasks = [reader, pump, stop]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                reason = self._stop_reason
            elif pump.done() and not pump.cancelled() and pump.exception() is None:
                reason = pump.result()
            elif reader.done() and not reader.cancelled() and reader.exception() is None:
                reason = reader.result()
            for task in (reader, pump):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error(
                        "session %s: %s failed", self.session_id, task.get_name(), exc_info=task.exception()
                    )
                    reason = "internal_error"
            return reason
        finally:
            self.end_reason = reason
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._finish(reason)
            await self.outbox.close()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _connect(self) -> bool:
        t0 = now_ns()
        s = self.config.settings
        try:
            await self.provider.connect()
        except Exception as exc:
            if isinstance(exc, RealtimeError):
                err = exc
            else:
                log.exception("session %s: provider connect failed", self.session_id)
                err = RealtimeProviderError(f"provider connect failed: {exc}", code="connect_failed")
            err.fatal = True
            self.recorder.record_span(
                self.tracer.span("provider.connect", t0, now_ns(), ok=False, code=err.code)
            )
            await self.report(err)
            return False
        self.recorder.record_span(
            self.tracer.span(
                "provider.connect", t0, now_ns(), ok=True, provider=s.provider, model=s.effective_model
            )
        )
        ready = pb.SessionReady(
            session_id=self.session_id,
            provider=s.provider,
            model=s.effective_model,
            voice=s.effective_voice,
        )
        await self.send(pb.ServerFrame(ready=ready))
        return True

    def shutdown(self, err: RealtimeError | None, reason: str) -> None:
        """End the session from outside (bridge draining): ``err`` then ``EndFrame(reason)`` to the caller."""
        self._stop_error = err
        self._stop_reason = reason
        self._stop.set()

    async def _finish(self, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.provider.close()
        await self.tools.aclose()
        if self._stop_error is not None:
            await self.report(self._stop_error)
        await self.send(pb.ServerFrame(end=pb.EndFrame(reason=reason)))
        self.recorder.record_span(self.tracer.root(now_ns(), end_reason=reason, provider=self.provider.name))

    # -- caller → provider -----------------------------------------------------------------------------

    async def _read_client(self, requests: AsyncIterator[pb.ClientFrame]) -> str:
        provider = self.provider
        async for frame in requests:
            self.recorder.record_client(frame)
            kind = frame.WhichOneof("frame")
            if kind == "audio":
                await self._on_caller_audio(frame.audio)
            elif kind == "playback_mark":
                mark = frame.playback_mark
                self.playback.on_mark(mark.item_id, mark.played_ms)
            elif kind == "end":
                return frame.end.reason or "caller_hangup"
            else:
                self._event_span("caller", kind, frame)
                try:
                    await self._on_control(kind, frame, provider)
                except RealtimeError as err:
                    await self.report(err)
        return "caller_hangup"

    async def _on_caller_audio(self, audio: pb.AudioFrame) -> None:
        fmt = audio.format
        if fmt.encoding and (fmt.encoding, fmt.sample_rate_hz) != self._in_fmt_key:
            await self.report(
                RealtimeAudioFormatError(
                    f"audio frame format is not the session input format {self.config.caller_input.name}",
                    code="wrong_format",
                )
            )
            return
        try:
            validate_frame(audio.data, self.config.caller_input)
        except RealtimeAudioFormatError as err:
            await self.report(err)
            return
        data = self._in_conv.convert(audio.data)
        if data:
            await self.provider.send_audio(data)

    async def _on_control(self, kind: str | None, frame: pb.ClientFrame, provider: RealtimeProvider) -> None:
        if kind == "interrupt":
            await self._barge_in("caller")
        elif kind == "steer":
            await provider.steer(frame.steer)
            if frame.steer.HasField("turn_detection"):
                self.vad_interrupts = turn_detection_from_proto(frame.steer.turn_detection).interrupt_response
        elif kind == "text":
            if not frame.text.text.strip():
                raise RealtimeProtocolError("TextInput.text is empty", code="empty_text")
            await provider.send_text(frame.text.text)
        elif kind == "end_of_turn":
            await provider.end_turn()
        elif kind == "start":
            raise RealtimeProtocolError("SessionStart may only be the first frame", code="duplicate_start")
        else:
            raise RealtimeProtocolError("empty ClientFrame", code="empty_frame")

    async def _barge_in(self, source: str) -> None:
        """Stop agent playback now and make the provider forget what the caller did not hear.

        The item to truncate is the one the caller is playing; when its audio never reached the caller
        (all still queued), it is the item being converted, at 0 ms played.
        """
        audible = self.playback.audible()
        queued = self.outbox.purge_audio()
        if source != "caller" and not (audible or queued or self.response_active):
            return
        item = self.playback.current_item if audible else None
        if item is None and self._out_item is not None and self._out_item in queued:
            item = self._out_item
        played = self.playback.played_ms(item) if item else None
        for cut in {item, self._out_item, *queued} - {None}:
            self.playback.clear(str(cut))
        self._out_item = None
        self._out_conv.reset()
        await self.send(pb.ServerFrame(clear_audio=pb.ClearAudio(item_id=item or "")))
        await self.provider.interrupt(item, played)
        self.recorder.record_span(
            self.tracer.event("barge_in", source=source, item_id=item or "", played_ms=played or 0)
        )

    # -- provider → caller -----------------------------------------------------------------------------

    async def _pump(self) -> str:
        async for frame in self.provider.events():
            kind = frame.WhichOneof("frame")
            if kind == "audio":
                await self._on_agent_audio(frame.audio)
            elif kind == "end":
                self._flush_item()
                return frame.end.reason or "provider_closed"
            else:
                await self._on_provider_event(kind, frame)
        return "provider_closed"

    async def _on_agent_audio(self, audio: pb.AudioFrame) -> None:
        item = audio.item_id
        if self.playback.is_cleared(item):
            return  # late audio of an item cut by barge-in
        if not audio.data:
            if item == self._out_item:
                self._flush_item()
            return
        if item != self._out_item:
            self._flush_item()
            self._out_item = item
            self._out_content_index = audio.content_index
        data = self._out_conv.convert(audio.data)
        if data:
            if self._first_audio_ns is None:
                self._first_audio_ns = now_ns()
            self.outbox.put_audio(data, item, audio.content_index)

    async def _on_provider_event(self, kind: str | None, frame: pb.ServerFrame) -> None:
        self._event_span("provider", kind, frame)
        if kind == "speech_started":
            await self.send(frame)
            if self.vad_interrupts:
                await self._barge_in("vad")
            return
        if kind == "clear_audio":
            # The provider cut its own response (Gemini `interrupted`): the same barge-in as VAD, so late
            # audio is dropped, the caller flushes and the recorder marks what was heard.
            await self._barge_in("provider")
            return
        if kind == "response_started":
            self.response_active = True
            self._response_t0[frame.response_started.response_id] = now_ns()
            self._first_audio_ns = None
        elif kind == "response_done":
            self.response_active = False
            self._flush_item()
            done = frame.response_done
            t0 = self._response_t0.pop(done.response_id, None)
            if t0 is not None:
                self.recorder.record_span(
                    self.tracer.span(
                        "response",
                        t0,
                        now_ns(),
                        response_id=done.response_id,
                        status=done.status,
                        status_reason=done.status_reason,
                        output_tokens=done.usage.output_tokens,
                        input_tokens=done.usage.input_tokens,
                        first_audio_ms=(self._first_audio_ns - t0) / 1e6 if self._first_audio_ns else None,
                    )
                )
        elif kind == "error":
            self._error_span(frame.error)
        elif kind == "tool_call":
            self._tool_t0[frame.tool_call.call_id] = now_ns()
            await self.send(frame)
            self.tools.start(frame.tool_call)
            return
        elif kind == "tool_cancellation":
            cancelled = self.tools.cancel(frame.tool_cancellation.call_ids)
            for cid in cancelled:
                self._tool_span(cid, "", cancelled=True)
        await self.send(frame)

    def _event_span(self, source: str, kind: str | None, frame: Any) -> None:
        """A zero-length span per meaningful caller frame or provider event (audio frames are summarized by
        the ``response`` span instead: 50 spans a second would say nothing)."""
        if kind is None or kind in _SPANNED_ELSEWHERE:
            return
        body = getattr(frame, kind)
        attrs: dict[str, Any] = {}
        for field, value in body.ListFields():
            if field.type == field.TYPE_MESSAGE:
                continue
            if field.name == "text" and kind == "transcript" and not body.final:
                return  # deltas are summarized by the final transcript
            attrs[field.name] = value if isinstance(value, bool | int | float) else str(value)
        self.recorder.record_span(self.tracer.event(f"{source}.{kind}", **attrs))

    def _tool_span(self, call_id: str, name: str, **attrs: Any) -> None:
        t0 = self._tool_t0.pop(call_id, None)
        if t0 is not None:
            self.recorder.record_span(
                self.tracer.span("tool.call", t0, now_ns(), call_id=call_id, tool=name, **attrs)
            )

    async def _on_tool_result(self, result: pb.ToolResult) -> None:
        self._tool_span(result.call_id, result.name, is_error=result.is_error, duration_ms=result.duration_ms)
        await self.send(pb.ServerFrame(tool_result=result))
        try:
            await self.provider.send_tool_result(result)
        except RealtimeError as err:
            await self.report(err)
