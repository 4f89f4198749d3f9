"""One bridge session: a caller's ``Converse`` stream ⇄ one provider conversation.

Caller audio goes to the provider through :class:`~rtvoice.bridge.audio_paths.CallerAudioIn` (format
fixed at ``SessionStart``; per frame only the byte-length check), agent audio to the caller through
:class:`~rtvoice.bridge.audio_paths.AgentAudioOut` and a :class:`~rtvoice.bridge.outbox.CallerOutbox`
(one writer; nothing else waits on gRPC). Barge-in (provider ``speech_started`` while the agent is
audible, the provider cutting its own response, or the caller's ``InterruptFrame``) sends ``ClearAudio``
at once, then tells the provider the :class:`~rtvoice.bridge.barge_in.Cut` (what the caller heard);
:class:`~rtvoice.bridge.barge_in.BargeIn` is the one owner of what was sent, played and cut. Tool calls
run in :class:`~rtvoice.bridge.tools.ToolRuntime`. A copy of every frame in both directions and the
session's spans (:class:`~rtvoice.bridge.telemetry.SessionSpans`) go to the recorder sink, which never
blocks the voice loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from rtvoice.bridge.audio_paths import AgentAudioOut, CallerAudioIn
from rtvoice.bridge.barge_in import BargeIn
from rtvoice.bridge.config import SessionConfig
from rtvoice.bridge.outbox import CallerOutbox, RecorderSink, Writer
from rtvoice.bridge.providers.base import RealtimeProvider
from rtvoice.bridge.responses import ResponseLedger
from rtvoice.bridge.steering import turn_detection_from_proto
from rtvoice.bridge.telemetry import SessionSpans
from rtvoice.bridge.tools import ToolRuntime, error_output
from rtvoice.bridge.watchdog import RESPONSE
from rtvoice.core.end_reason import EndReason, end_frame, wire_name
from rtvoice.core.errors import (
    RealtimeError,
    RealtimeProtocolError,
    RealtimeProviderError,
    RealtimeReadTimeout,
)
from rtvoice.core.spans import SessionTracer, now_ns
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger(__name__)

__all__ = ["BridgeSession", "RecorderSink", "Writer"]

#: Largest merged agent audio frame when the caller writer falls behind (see ``outbox``).
MAX_MERGED_AUDIO_MS = 200
#: After the bridge ended a session, how long it keeps reading for the caller side's last spans (the
#: ingress sends its session span, then half-closes) before the archive is closed without them.
TRAILER_WAIT_S = 0.5


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
        clock_t0_ns: int | None = None,
    ) -> None:
        self.session_id = session_id
        self.config = config
        self.provider = provider
        self.recorder = recorder
        self.tracer = tracer
        t0 = time.monotonic_ns() if clock_t0_ns is None else clock_t0_ns
        self.barge_in = BargeIn(config.caller_output, provider.output_format, t0)
        self.outbox = CallerOutbox(
            write,
            recorder,
            self.barge_in,
            config.caller_output.to_proto(),
            config.caller_output.bytes_for_ms(MAX_MERGED_AUDIO_MS),
        )
        self.caller_in = CallerAudioIn(config.caller_input, provider.input_format)
        self.agent_out = AgentAudioOut(
            provider.output_format, config.caller_output, self.outbox, self.barge_in
        )
        self.spans = SessionSpans(tracer, recorder)
        self.responses = ResponseLedger(self.barge_in, self.spans, config.settings.session)
        #: turnDetection.interruptResponse: provider VAD speech cuts the agent off
        self.vad_interrupts = config.settings.turn_detection.interrupt_response
        td = config.settings.turn_detection
        #: server VAD creates a response when the caller's speech ends
        self._vad_answers = td.type != "none" and td.create_response
        self.tools = ToolRuntime(config.settings.tools, self._on_tool_result)
        self._stop = asyncio.Event()
        self._stop_error: RealtimeError | None = None
        self._stop_reason: EndReason = pb.END_REASON_BRIDGE_SHUTDOWN
        #: Set once the session is ending: the caller reader then takes only spans and the end of stream.
        self._ending = False
        self.end_reason: EndReason = pb.END_REASON_UNSPECIFIED

    # -- output ----------------------------------------------------------------------------------------

    async def send(self, frame: pb.ServerFrame) -> None:
        """Queue ``frame`` for the caller (recorded when written; never waits on gRPC)."""
        self.outbox.put(frame)

    async def report(self, err: RealtimeError) -> None:
        """A typed failure: ``ErrorFrame`` to the caller, an ``error`` span to the errors sink."""
        frame = err.to_frame()
        self.spans.error(frame)
        await self.send(pb.ServerFrame(error=frame))

    # -- run -------------------------------------------------------------------------------------------

    async def run(self, requests: AsyncIterator[pb.ClientFrame]) -> EndReason:
        """Connect the provider, answer ``ready``, relay until either side ends; returns the end reason."""
        # Until a side ends the session with a reason: a cancelled RPC means the caller's side vanished.
        reason: EndReason = pb.END_REASON_CALLER_DISCONNECTED
        tasks: list[asyncio.Task[Any]] = []
        reader: asyncio.Task[EndReason] | None = None
        self.responses.start(self._on_expired)
        writer = asyncio.create_task(self.outbox.run())
        try:
            if not await self._connect():
                reason = pb.END_REASON_PROVIDER_ERROR
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
                    reason = pb.END_REASON_INTERNAL_ERROR
            return reason
        finally:
            self.end_reason = reason
            self._ending = True
            self.responses.close()
            # The bridge ends first (provider, drain, limits): the caller's reader stays to take the
            # caller side's closing spans after our EndFrame.
            trailer = reader if reader is not None and not reader.done() else None
            others = [t for t in tasks if t is not trailer]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await self._finish(reason)
            await self.outbox.close()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if trailer is not None:
                await asyncio.wait([trailer], timeout=TRAILER_WAIT_S)
                trailer.cancel()
                await asyncio.gather(trailer, return_exceptions=True)

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
            self.spans.span("provider.connect", t0, ok=False, code=err.code)
            await self.report(err)
            return False
        self.spans.span("provider.connect", t0, ok=True, provider=s.provider, model=s.effective_model)
        ready = pb.SessionReady(
            session_id=self.session_id,
            provider=s.provider,
            model=s.effective_model,
            voice=s.effective_voice,
        )
        await self.send(pb.ServerFrame(ready=ready))
        return True

    def shutdown(self, err: RealtimeError | None, reason: EndReason) -> None:
        """End the session from outside (bridge draining): ``err`` then ``EndFrame(reason)`` to the caller."""
        self._stop_error = err
        self._stop_reason = reason
        self._stop.set()

    async def _finish(self, reason: EndReason) -> None:
        with contextlib.suppress(Exception):
            await self.provider.close()
        await self.tools.aclose()
        if self._stop_error is not None:
            await self.report(self._stop_error)
        await self.send(pb.ServerFrame(end=end_frame(reason)))
        self.spans.root(end_reason=wire_name(reason), provider=self.provider.name)

    # -- caller → provider -----------------------------------------------------------------------------

    async def _read_client(self, requests: AsyncIterator[pb.ClientFrame]) -> EndReason:
        provider = self.provider
        async for frame in requests:
            kind = frame.WhichOneof("frame")
            if self._ending:  # after our EndFrame: the caller side's last spans, then its half-close
                if kind == "span":
                    self.spans.relayed(frame.span)
                elif kind == "end":
                    break
                continue
            if kind == "audio":
                await self._on_caller_audio(frame)
                continue
            if kind == "span":  # the ingress's span: recorded as a span, not as a caller frame
                self.spans.relayed(frame.span)
                continue
            self.recorder.record_client(frame)
            if kind == "playback_mark":
                mark = frame.playback_mark
                self.barge_in.on_mark(mark.item_id, mark.played_ms)
            elif kind == "end":
                return frame.end.reason or pb.END_REASON_CALLER_HANGUP
            else:
                self.spans.event("caller", kind, frame)
                try:
                    await self._on_control(kind, frame, provider)
                except RealtimeError as err:
                    await self.report(err)
        return pb.END_REASON_CALLER_DISCONNECTED  # the stream ended without an EndFrame: nobody hung up

    async def _on_caller_audio(self, frame: pb.ClientFrame) -> None:
        try:
            data, t_us = self.caller_in.accept(frame.audio.data)
        except RealtimeError as err:
            self.recorder.record_client(frame)
            await self.report(err)
            return
        self.recorder.record_client(frame, t_us)  # stamped with its sample position, not read time
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
            self.responses.user_turn_ended(self.barge_in.now_ms())
        elif kind == "end_of_turn":
            await provider.end_turn()
            self.responses.user_turn_ended(self.caller_in.clock.position_ms)
        elif kind == "start":
            raise RealtimeProtocolError("SessionStart may only be the first frame", code="duplicate_start")
        else:
            raise RealtimeProtocolError("empty ClientFrame", code="empty_frame")

    async def _barge_in(self, source: str) -> None:
        """Stop agent playback now and make the provider forget what the caller did not hear.

        The item to truncate is the one the caller is playing; when its audio never reached the caller
        (all still queued), it is the item being converted, at 0 ms played.
        """
        barge = self.barge_in
        audible = barge.audible()
        queued, converting = self.agent_out.purge()
        if source != "caller" and not (audible or queued or self.responses.response_id):
            return
        item = barge.current_item if audible else None
        if item is None and converting is not None and converting in queued:
            item = converting
        others = queued | ({converting} if converting else set())
        cut = barge.cut(item, others, self.responses.response_id)
        await self.send(pb.ServerFrame(clear_audio=pb.ClearAudio(item_id=item or "")))
        await self.provider.interrupt(cut)
        played = cut.played_ms if cut else (barge.played_ms(item) if item else 0)
        self.spans.instant("barge_in", source=source, item_id=item or "", played_ms=played)

    # -- provider → caller -----------------------------------------------------------------------------

    async def _pump(self) -> EndReason:
        responses = self.responses
        async for frame in self.provider.events():
            kind = frame.WhichOneof("frame")
            if kind == "audio":
                queued = self.agent_out.on_audio(frame.audio)
                responses.progress(frame.audio.item_id if queued else None)
            elif kind == "end":
                self.agent_out.flush()
                return frame.end.reason or pb.END_REASON_PROVIDER_CLOSED
            else:
                await self._on_provider_event(kind, frame)
        return pb.END_REASON_PROVIDER_CLOSED

    async def _on_provider_event(self, kind: str | None, frame: pb.ServerFrame) -> None:
        self.spans.event("provider", kind, frame)
        barge = self.barge_in
        responses = self.responses
        if kind == "speech_started":
            await self.send(frame)
            responses.caller_speaks()
            if self.vad_interrupts:
                await self._barge_in("vad")
            return
        if kind == "speech_stopped":
            if self._vad_answers:
                responses.user_turn_ended(float(frame.speech_stopped.audio_end_ms))
        elif kind == "clear_audio":
            # The provider cut its own response (Gemini `interrupted`): the same barge-in as VAD, so late
            # audio is dropped, the caller flushes and the recorder marks what was heard.
            await self._barge_in("provider")
            return
        elif kind == "response_started":
            responses.started(frame.response_started.response_id)
        elif kind == "response_done":
            done = frame.response_done
            barge.response_done(done.response_id)
            self.agent_out.flush()
            if not responses.done(done):
                return  # the watchdog already ended it for the caller
        elif kind == "transcript":
            responses.progress()
            tr = frame.transcript
            if not tr.final and barge.is_cut(tr.item_id):
                return  # a late delta of what a barge-in cut
        elif kind == "error":
            self.spans.error(frame.error)
        elif kind == "tool_call":
            if barge.cut_response is not None and barge.cut_response == responses.response_id:
                return  # a call of the response a barge-in cancelled
            responses.tool_started(frame.tool_call)
            await self.send(frame)
            self.tools.start(frame.tool_call)
            return
        elif kind == "tool_cancellation":
            for cid in frame.tool_cancellation.call_ids:
                responses.tool_finished(cid)
            for cid in self.tools.cancel(frame.tool_cancellation.call_ids):
                self.spans.tool_done(cid, "", cancelled=True)
        await self.send(frame)

    async def _on_expired(self, key: str) -> None:
        """A watchdog ran out: a typed non-fatal error and an error span; the session goes on."""
        responses = self.responses
        if key != RESPONSE:
            name = responses.tool_finished(key)
            if not self.tools.cancel([key]):
                return  # it finished meanwhile
            ms = int(responses.tool_timeout_s * 1000)
            msg = f"tool {name} returned nothing for {ms} ms"
            await self.report(RealtimeReadTimeout(msg, code="tool_timeout"))
            output = error_output(f"tool {name} did not return within {ms} ms")
            await self._on_tool_result(pb.ToolResult(call_id=key, name=name, output=output, is_error=True))
            return
        ms = int(responses.response_timeout_s * 1000)
        msg = f"the provider sent no audio and no end of the response for {ms} ms; response cancelled"
        await self.report(RealtimeReadTimeout(msg, code="response_timeout"))
        await self.provider.abandon_response()
        rid = responses.response_id
        done = responses.abandon()
        if done is not None:
            items = {i for i in (self.agent_out.item, self.barge_in.current_item) if i}
            self.barge_in.cut(None, items, rid)  # whatever still comes of it is dropped
            self.agent_out.flush()
            await self.send(pb.ServerFrame(response_done=done))

    async def _on_tool_result(self, result: pb.ToolResult) -> None:
        self.responses.tool_finished(result.call_id)
        self.spans.tool_done(
            result.call_id, result.name, is_error=result.is_error, duration_ms=result.duration_ms
        )
        await self.send(pb.ServerFrame(tool_result=result))
        try:
            await self.provider.send_tool_result(result)
        except RealtimeError as err:
            await self.report(err)
            return
        self.responses.user_turn_ended(self.barge_in.now_ms())  # the model answers the tool output
