"""One realtime session of the engine: client events in, server events out (OpenAI Realtime GA).

:class:`RealtimeSession` is transport-free: :meth:`RealtimeSession.handle` takes one client text frame,
server events are queued as JSON strings on :attr:`RealtimeSession.outbox` (in emission order) for the
socket writer. Bad input becomes an ``error`` event (``invalid_request_error``) and the session goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from rtvoice.core.audio import PCM16_16K, AudioConverter, decode
from rtvoice.localrt import events as ev
from rtvoice.localrt import items
from rtvoice.localrt.audio_in import MIN_COMMIT_MS, InputAudio, decode_append
from rtvoice.localrt.config import (
    JsonObj,
    RequestError,
    apply_session_update,
    audio_format,
    check_format,
    default_session,
    voice_name,
)
from rtvoice.localrt.decoder_pool import RecognizerBusyError
from rtvoice.localrt.items import Conversation
from rtvoice.localrt.options import EngineOptions
from rtvoice.localrt.recognition import SpeechRecognizer, SpeechStream, VadChoice
from rtvoice.localrt.responder import Message, Responder, ToolCall
from rtvoice.localrt.response import ResponseParams, ResponseRunner
from rtvoice.localrt.speech import LocalSpeech, Speech, prewarm_soon
from rtvoice.localrt.vad import VadEvent
from rtvoice.localrt.voices import UnsupportedVoiceError

log = logging.getLogger(__name__)

_RESPONSE_KEYS = {
    "instructions", "output_modalities", "audio", "conversation", "metadata", "max_output_tokens", "input",
    "tools", "tool_choice", "prompt",
}  # fmt: skip


@dataclass
class _Utterance:
    item_id: str
    stream: SpeechStream
    start_ms: int


class RealtimeSession:
    """State and behaviour of one connection. ``model``: from ``?model=``; events go to :attr:`outbox`."""

    def __init__(
        self,
        options: EngineOptions,
        responder: Responder,
        recognizer: SpeechRecognizer,
        model: str,
        speech: Speech | None = None,
    ) -> None:
        self.options = options
        self.responder = responder
        self.recognizer = recognizer
        self.speech: Speech = speech or LocalSpeech()
        self.session = default_session(model, options.voice)
        self.conversation = Conversation(ev.new_id("conv"))
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        audio_cfg = self.session["audio"]["input"]
        vad_kind: VadChoice = "webrtc" if options.vad == "webrtc" else "silero"
        self.input = InputAudio(audio_format(audio_cfg["format"]), audio_cfg["turn_detection"], vad_kind)
        self.assistant_audio_present = False
        self.active: ResponseRunner | None = None
        self._out_of_band: set[ResponseRunner] = set()
        self._utterance: _Utterance | None = None
        self._turn_after_cancel: float | None = None  # input ms of a turn to answer after a barge-in
        self._transcripts: dict[str, asyncio.Task[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.emit(ev.session_created(self.session))

    # --- plumbing ------------------------------------------------------------------------------------------

    def emit(self, event: ev.Event) -> None:
        """Queue a server event (serialised now, so later changes to shared dicts do not leak into it)."""
        self.outbox.put_nowait(json.dumps(event))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def handle(self, raw: str | bytes) -> None:
        """Process one client frame; errors are reported as ``error`` events, never raised."""
        event_id = None
        try:
            if isinstance(raw, bytes):
                raise RequestError("invalid_value", "Binary frames are not supported; send JSON text frames.")
            try:
                event = json.loads(raw)
            except ValueError as exc:
                raise RequestError("invalid_json", f"The frame is not valid JSON: {exc}.") from exc
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise RequestError(
                    "invalid_value", "A client event must be a JSON object with a 'type'.", "type"
                )
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            handler = getattr(self, "_on_" + event["type"].replace(".", "_"), None)
            if handler is None:
                raise RequestError(
                    "invalid_value", f"Invalid value: '{event['type']}'. Unknown event type.", "type"
                )
            await handler(event)
        except RequestError as exc:
            self.emit(ev.error(exc.code, exc.message, type_=exc.type, param=exc.param, event_id=event_id))

    async def close(self) -> None:
        """Stop everything running for this session (socket closed)."""
        if self._utterance is not None:
            self._utterance.stream.abort()
            self._utterance = None
        for runner in [self.active, *self._out_of_band]:
            if runner is not None:
                runner.cancel("client_cancelled")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- session ---------------------------------------------------------------------------------------

    async def _on_session_update(self, event: JsonObj) -> None:
        new = apply_session_update(
            self.session, event.get("session"), assistant_audio_present=self.assistant_audio_present
        )
        self._check_voice(voice_name(new), "session.audio.output.voice")
        if voice_name(new) != voice_name(self.session):  # load a new voice (Piper: seconds) before it speaks
            prewarm_soon(self.speech, voice_name(new))
        old_in, new_in = self.session["audio"]["input"], new["audio"]["input"]
        self.session = new
        self.input.set_format(audio_format(new_in["format"]))
        if old_in["turn_detection"] != new_in["turn_detection"]:
            self._drop_utterance()
            self.input.set_turn_detection(new_in["turn_detection"])
        self.emit(ev.session_updated(self.session))

    def _check_voice(self, voice: str | None, param: str) -> None:
        """Raise ``unsupported_voice`` (session unchanged) for a voice the speech stage cannot speak."""
        try:
            self.speech.check_voice(voice)
        except UnsupportedVoiceError as exc:
            raise RequestError("unsupported_voice", str(exc), param) from exc

    # --- input audio -------------------------------------------------------------------------------------

    async def _on_input_audio_buffer_append(self, event: JsonObj) -> None:
        for vad_event in self.input.append(decode_append(event.get("audio"), self.input.fmt)):
            self._on_vad(vad_event)

    def _on_vad(self, vad: VadEvent) -> None:
        td = self.session["audio"]["input"]["turn_detection"] or {}
        if vad.kind == "start":
            item_id = ev.new_id("item")
            self._utterance = _Utterance(item_id, self.recognizer.stream(self.options.phrases), vad.ms)
            self._utterance.stream.feed(vad.audio)
            self.emit(ev.input_audio_buffer_speech_started(vad.ms, item_id))
            if self.active is not None and td.get("interrupt_response", True):
                self.active.cancel("turn_detected")
        elif vad.kind == "audio" and self._utterance is not None:
            self._utterance.stream.feed(vad.audio)
        elif vad.kind == "pause" and self._utterance is not None:  # silence began: recognition may start
            self._utterance.stream.pause()
        elif vad.kind == "stop" and self._utterance is not None:
            utt, self._utterance = self._utterance, None
            utt.stream.feed(vad.audio, speech=False)
            self.emit(ev.input_audio_buffer_speech_stopped(vad.ms, utt.item_id))
            self.input.clear()
            self._commit(utt.item_id, utt.stream, vad.ms - utt.start_ms)
            if td.get("create_response", True):
                if self.active is None:
                    self._start_response({}, vad.ms - utt.start_ms)
                elif self.active.cancel_reason is not None:  # barge-in: answer once the cancel is done
                    self._turn_after_cancel = float(vad.ms - utt.start_ms)
                else:
                    log.info("speech ended while response %s is active: no new response", self.active.id)

    def _drop_utterance(self) -> None:
        if self._utterance is not None:
            self._utterance.stream.abort()
            self._utterance = None
        self.input.reset_vad()

    def _commit(self, item_id: str, stream: SpeechStream, audio_ms: float) -> None:
        prev = self.conversation.last_id()
        self.emit(ev.input_audio_buffer_committed(item_id, prev))
        item = items.user_audio_item(item_id)
        self.conversation.add(item)
        self.emit(ev.conversation_item_added(item, prev))
        self.emit(ev.conversation_item_done(item, prev))
        self._transcripts[item_id] = self._spawn(self._transcribe(item, stream, audio_ms))

    async def _transcribe(self, item: JsonObj, stream: SpeechStream, audio_ms: float) -> str:
        try:
            transcript = await stream.finish()
        except RecognizerBusyError as exc:  # every decoder stayed busy: say so instead of waiting forever
            log.warning("recognition refused: %s", exc)
            busy = f"Speech recognition is overloaded: {exc}."
            self.emit(ev.error("recognizer_busy", busy, type_="server_error"))
            if self.session["audio"]["input"]["transcription"] is not None:
                self.emit(
                    ev.conversation_item_input_audio_transcription_failed(
                        item["id"], 0, "recognizer_busy", str(exc)
                    )
                )
            return ""
        except Exception as exc:  # pocketsphinx failure: report it, keep the session
            log.exception("recognition failed")
            if self.session["audio"]["input"]["transcription"] is not None:
                self.emit(
                    ev.conversation_item_input_audio_transcription_failed(
                        item["id"], 0, "asr_failed", str(exc)
                    )
                )
            return ""
        item["content"][0]["transcript"] = transcript
        self.conversation.confidence[item["id"]] = getattr(stream, "confidence", None)
        if self.session["audio"]["input"]["transcription"] is not None:
            self.emit(
                ev.conversation_item_input_audio_transcription_completed(
                    item["id"], 0, transcript, audio_ms / 1000
                )
            )
        return transcript

    async def _on_input_audio_buffer_commit(self, event: JsonObj) -> None:
        buffered = self.input.buffer_ms
        if buffered < MIN_COMMIT_MS:
            raise RequestError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms "
                f"of audio, but buffer only has {buffered:.2f}ms of audio.",
            )
        item_id = self._utterance.item_id if self._utterance is not None else ev.new_id("item")
        if self._utterance is not None:
            self._utterance.stream.abort()
            self._utterance = None
        self.input.reset_vad()
        stream = self.recognizer.stream(self.options.phrases)
        stream.feed(self.input.take_buffer())
        self._commit(item_id, stream, buffered)

    async def _on_input_audio_buffer_clear(self, event: JsonObj) -> None:
        self._drop_utterance()
        self.input.clear()
        self.emit(ev.input_audio_buffer_cleared())

    # --- conversation ------------------------------------------------------------------------------------

    async def _on_conversation_item_create(self, event: JsonObj) -> None:
        item = items.normalize_client_item(event.get("item"), ev.new_id("item"))
        if self.conversation.get(item["id"]) is not None:
            raise RequestError("invalid_value", f"Item with id '{item['id']}' already exists.", "item.id")
        audio_part = next((p for p in item.get("content", []) if p["type"] == "input_audio"), None)
        if audio_part is not None and audio_part.get("audio"):
            data = decode_append(audio_part.pop("audio"), self.input.fmt)
            pcm = AudioConverter(self.input.fmt, PCM16_16K)
            samples = decode(pcm.convert(data) + pcm.flush(), PCM16_16K)
            stream = self.recognizer.stream(self.options.phrases)
            stream.feed(samples)
            self._transcripts[item["id"]] = self._spawn(
                self._transcribe(item, stream, self.input.fmt.duration_ms(len(data)))
            )
        previous = event.get("previous_item_id")
        if previous is not None and not isinstance(previous, str):
            raise RequestError("invalid_value", "'previous_item_id' must be a string.", "previous_item_id")
        prev = self.conversation.add(item, previous)
        self.emit(ev.conversation_item_added(item, prev))
        self.emit(ev.conversation_item_done(item, prev))

    async def _on_conversation_item_truncate(self, event: JsonObj) -> None:
        item_id, index, end_ms = (
            event.get("item_id"),
            event.get("content_index", 0),
            event.get("audio_end_ms"),
        )
        if not isinstance(item_id, str):
            raise RequestError(
                "missing_required_parameter", "Missing required parameter: 'item_id'.", "item_id"
            )
        if not isinstance(index, int) or not isinstance(end_ms, int) or isinstance(end_ms, bool):
            raise RequestError(
                "invalid_value", "'content_index' and 'audio_end_ms' must be integers.", "audio_end_ms"
            )
        self.conversation.truncate(item_id, index, end_ms)
        self.emit(ev.conversation_item_truncated(item_id, index, end_ms))

    async def _on_conversation_item_delete(self, event: JsonObj) -> None:
        item_id = str(event.get("item_id"))
        self.conversation.delete(item_id)
        self._transcripts.pop(item_id, None)
        self.emit(ev.conversation_item_deleted(item_id))

    async def _on_conversation_item_retrieve(self, event: JsonObj) -> None:
        self.emit(ev.conversation_item_retrieved(self.conversation.snapshot(str(event.get("item_id")))))

    async def _on_output_audio_buffer_clear(self, event: JsonObj) -> None:
        raise RequestError(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
            "type",
        )

    # --- responses ---------------------------------------------------------------------------------------

    async def _on_response_create(self, event: JsonObj) -> None:
        overrides = event.get("response") or {}
        if not isinstance(overrides, dict):
            raise RequestError("invalid_type", "'response' must be an object.", "response")
        for key in overrides:
            if key not in _RESPONSE_KEYS:
                raise RequestError(
                    "unknown_parameter", f"Unknown parameter: 'response.{key}'.", f"response.{key}"
                )
        if overrides.get("conversation", "auto") not in ("auto", "none"):
            raise RequestError(
                "invalid_value", "'response.conversation' must be 'auto' or 'none'.", "response.conversation"
            )
        if overrides.get("conversation", "auto") == "auto" and self.active is not None:
            raise RequestError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        self._start_response(overrides, 0.0)

    def _start_response(self, overrides: JsonObj, input_audio_ms: float) -> None:
        s = self.session
        modalities = overrides.get("output_modalities", s["output_modalities"])
        if modalities not in (["audio"], ["text"]):
            raise RequestError(
                "invalid_value",
                '\'output_modalities\' must be ["audio"] or ["text"].',
                "response.output_modalities",
            )
        out = (overrides.get("audio") or {}).get("output") or {}
        fmt = (
            check_format(out["format"], "response.audio.output.format")
            if "format" in out
            else s["audio"]["output"]["format"]
        )
        voice = out.get("voice") or voice_name(s)
        tools = list(overrides.get("tools", s["tools"]) or [])
        if overrides.get("tool_choice", s["tool_choice"]) == "none":
            tools = []  # the model must not call any
        self._check_voice(voice, "response.audio.output.voice")
        params = ResponseParams(
            response_id=ev.new_id("resp"),
            output_modalities=modalities,
            voice=voice,
            speed=float(s["audio"]["output"].get("speed") or 1.0),
            output_format=fmt,
            instructions=str(overrides.get("instructions", s["instructions"])),
            in_conversation=overrides.get("conversation", "auto") == "auto",
            metadata=overrides.get("metadata"),
            max_output_tokens=overrides.get("max_output_tokens") or s["max_output_tokens"],
            input_audio_ms=input_audio_ms,
            tools=tools,
        )
        input_items = overrides.get("input")
        runner = ResponseRunner(
            params, self.emit, self.conversation, self.responder, self.speech,
            lambda: self._history(input_items), self._mark_audio,
        )  # fmt: skip
        if params.in_conversation:
            self.active = runner
        else:
            self._out_of_band.add(runner)
        self._spawn(self._run(runner))

    async def _run(self, runner: ResponseRunner) -> None:
        try:
            await runner.run()
        except Exception:  # a bug must not kill the connection; the client still gets an error event
            log.exception("response %s failed", runner.id)
            self.emit(
                ev.error("server_error", "The response failed inside the engine.", type_="server_error")
            )
        finally:
            if self.active is runner:
                self.active = None
                if self._turn_after_cancel is not None:
                    audio_ms, self._turn_after_cancel = self._turn_after_cancel, None
                    self._start_response({}, audio_ms)
            self._out_of_band.discard(runner)

    def _mark_audio(self) -> None:
        self.assistant_audio_present = True

    async def _history(self, input_items: Any = None) -> list[Message]:
        if self._transcripts:
            await asyncio.gather(*self._transcripts.values(), return_exceptions=True)
        if isinstance(input_items, list):
            source = [
                self.conversation.get(str(it.get("id"))) if it.get("type") == "item_reference" else it
                for it in input_items
                if isinstance(it, dict)
            ]
        else:
            source = list(self.conversation.items)
        history: list[Message] = []
        for item in source:
            if item is None:
                continue
            if item.get("type") == "function_call":
                call = ToolCall(str(item.get("call_id")), str(item.get("name")), str(item.get("arguments")))
                history.append(Message("assistant", "", tool_calls=(call,)))
            elif item.get("type") == "function_call_output":
                history.append(Message("tool", items.item_text(item), tool_call_id=str(item.get("call_id"))))
            else:
                confidence = self.conversation.confidence.get(str(item.get("id")))
                history.append(Message(str(item.get("role")), items.item_text(item), confidence))
        return history

    async def _on_response_cancel(self, event: JsonObj) -> None:
        wanted = event.get("response_id")
        running = [r for r in [self.active, *self._out_of_band] if r is not None and not r.done]
        target = next((r for r in running if wanted in (None, r.id)), None)
        if target is None:
            raise RequestError("response_cancel_not_active", "Cancellation failed: no active response found")
        target.cancel("client_cancelled")
