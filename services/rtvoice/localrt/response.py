"""One model response of the engine: compose the reply text, speak it, emit the GA response events.

Event order (``/work/shared/protocols.md`` §A.4): ``response.created`` → ``rate_limits.updated`` →
``response.output_item.added`` → ``conversation.item.added`` → ``response.content_part.added`` →
interleaved ``response.output_audio_transcript.delta`` / ``response.output_audio.delta`` (one delta per
espeak chunk of ~60 ms; the transcript delta of a word precedes the audio it starts in) →
``output_audio.done`` → ``output_audio_transcript.done`` → ``content_part.done`` → ``output_item.done`` →
``conversation.item.done`` → ``response.done``. Text modality uses ``response.output_text.*`` instead.
:meth:`ResponseRunner.cancel` (``response.cancel`` or barge-in) stops synthesis and still emits every
``.done`` event, ending with ``response.done`` ``cancelled`` and the given reason.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rtvoice.core.audio import StreamResampler, encode
from rtvoice.localrt import events as ev
from rtvoice.localrt import items
from rtvoice.localrt.config import JsonObj, audio_format
from rtvoice.localrt.items import Conversation
from rtvoice.localrt.responder import CHAT_FAILED, Message, Responder, ResponderError
from rtvoice.localrt.tts import TTS_EXECUTOR, Word, get_synthesizer

log = logging.getLogger(__name__)

Emit = Callable[[ev.Event], None]
_CANCEL = object()


@dataclass
class ResponseParams:
    """Effective settings of one response (session values overridden by ``response.create``)."""

    response_id: str
    output_modalities: list[str]
    voice: str | None
    speed: float
    output_format: JsonObj
    instructions: str
    in_conversation: bool
    metadata: JsonObj | None = None
    max_output_tokens: int | str = "inf"
    input_audio_ms: float = 0.0


class ResponseRunner:
    """Runs one response as an asyncio task (:meth:`run`). ``history`` returns the chat messages to answer
    (awaiting pending transcripts); ``on_audio`` is called when the first audio delta is emitted."""

    def __init__(
        self,
        params: ResponseParams,
        emit: Emit,
        conversation: Conversation,
        responder: Responder,
        history: Callable[[], Awaitable[list[Message]]],
        on_audio: Callable[[], None],
    ) -> None:
        self.p = params
        self._emit = emit
        self._conv = conversation
        self._responder = responder
        self._history = history
        self._on_audio = on_audio
        self.cancel_reason: str | None = None
        self._cancelled = asyncio.Event()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stop_tts = threading.Event()
        self.done = False

    @property
    def id(self) -> str:
        return self.p.response_id

    def cancel(self, reason: str) -> None:
        """Stop the response (``client_cancelled`` | ``turn_detected``); its ``.done`` events follow."""
        if self.cancel_reason is None and not self.done:
            self.cancel_reason = reason
            self._cancelled.set()
            self._stop_tts.set()
            self._queue.put_nowait(_CANCEL)

    def _response(self, status: str, **kw: Any) -> JsonObj:
        audio_out = None
        if "audio" in self.p.output_modalities:
            audio_out = {"format": self.p.output_format, "voice": self.p.voice}
        return items.response_object(
            self.p.response_id,
            status,
            conversation_id=self._conv.id if self.p.in_conversation else None,
            output_modalities=self.p.output_modalities,
            audio_output=audio_out,
            metadata=self.p.metadata,
            max_output_tokens=self.p.max_output_tokens,
            **kw,
        )

    async def run(self) -> None:
        """Emit the whole response. Never raises for responder/TTS failures (they become ``error`` events)."""
        self._emit(ev.response_created(self._response("in_progress")))
        self._emit(ev.rate_limits_updated())
        history: list[Message] = []
        text: str | None = None
        compose = asyncio.ensure_future(self._compose())
        cancel_wait = asyncio.ensure_future(self._cancelled.wait())
        await asyncio.wait({compose, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
        cancel_wait.cancel()
        if compose.done():
            history, text = compose.result()
        else:
            compose.cancel()
        status_details: JsonObj | None = None
        if text is not None and isinstance(self.p.max_output_tokens, int):
            if items.estimate_text_tokens(text) > self.p.max_output_tokens:
                text = text[: self.p.max_output_tokens * 4]
                status_details = {"type": "incomplete", "reason": "max_output_tokens"}
        output: list[JsonObj] = []
        audio_ms = 0.0
        if text is not None and self.cancel_reason is None:
            item, audio_ms = await self._speak_or_write(text)
            output.append(item)
        if self.cancel_reason is not None:
            status, status_details = "cancelled", {"type": "cancelled", "reason": self.cancel_reason}
        elif status_details is not None:
            status = "incomplete"
        else:
            status = "completed"
        in_text = sum(items.estimate_text_tokens(m.content) for m in history)
        out_text = sum(items.estimate_text_tokens(items.item_text(it)) for it in output)
        usage = items.usage(in_text, items.estimate_audio_tokens(self.p.input_audio_ms), out_text,
                            items.estimate_audio_tokens(audio_ms, 20.0))  # fmt: skip
        self.done = True
        self._emit(
            ev.response_done(
                self._response(status, output=output, status_details=status_details, usage_=usage)
            )
        )

    async def _compose(self) -> tuple[list[Message], str]:
        history = await self._history()
        try:
            return history, await self._responder.reply(history, self.p.instructions)
        except ResponderError as exc:
            log.warning("responder failed: %s", exc)
            self._emit(ev.error("responder_failed", str(exc), type_="server_error"))
            return history, CHAT_FAILED

    async def _speak_or_write(self, text: str) -> tuple[JsonObj, float]:
        rid, item_id = self.p.response_id, ev.new_id("item")
        item = items.assistant_item(item_id, "in_progress", [])
        prev = self._conv.add(item) if self.p.in_conversation else None
        self._emit(ev.response_output_item_added(rid, 0, item))
        if self.p.in_conversation:
            self._emit(ev.conversation_item_added(item, prev))
        audio_mode = "audio" in self.p.output_modalities
        part: JsonObj = {"type": "audio", "transcript": ""} if audio_mode else {"type": "text", "text": ""}
        self._emit(ev.response_content_part_added(rid, item_id, 0, 0, part))
        content: JsonObj = (
            {"type": "output_audio", "transcript": ""} if audio_mode else {"type": "output_text", "text": ""}
        )
        item["content"] = [content]
        audio_ms = 0.0
        if audio_mode:
            spoken, audio_ms = await self._speak(text, item_id, content)
            self._emit(ev.response_output_audio_done(rid, item_id, 0, 0))
            self._emit(ev.response_output_audio_transcript_done(rid, item_id, 0, 0, spoken))
            part = {"type": "audio", "transcript": spoken}
        else:
            written = await self._write(text, item_id, content)
            self._emit(ev.response_output_text_done(rid, item_id, 0, 0, written))
            part = {"type": "text", "text": written}
        self._emit(ev.response_content_part_done(rid, item_id, 0, 0, part))
        item["status"] = "incomplete" if self.cancel_reason else "completed"
        self._emit(ev.response_output_item_done(rid, 0, item))
        if self.p.in_conversation:
            self._emit(ev.conversation_item_done(item, prev))
        return item, audio_ms

    async def _write(self, text: str, item_id: str, content: JsonObj) -> str:
        written = ""
        for piece in re.findall(r"\S+\s*", text):
            if self.cancel_reason:
                break
            written += piece
            content["text"] = written
            self._emit(ev.response_output_text_delta(self.p.response_id, item_id, 0, 0, piece))
            await asyncio.sleep(0)
        return written

    def _synthesize(self, text: str, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: espeak chunks → output format → the queue (None marks the end)."""
        synth = get_synthesizer()
        fmt = audio_format(self.p.output_format)
        resampler = StreamResampler(synth.sample_rate_hz, fmt.sample_rate_hz)

        def sink(samples: npt.NDArray[np.int16], words: list[Word]) -> bool:
            if self._stop_tts.is_set():
                return False
            loop.call_soon_threadsafe(
                self._queue.put_nowait, (encode(resampler.process(samples), fmt), words)
            )
            return True

        try:
            synth.stream(text, sink, self.p.voice, self.p.speed)
            if not self._stop_tts.is_set():
                loop.call_soon_threadsafe(self._queue.put_nowait, (encode(resampler.flush(), fmt), []))
        except Exception as exc:  # reported on the loop; the session survives
            loop.call_soon_threadsafe(self._queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def _speak(self, text: str, item_id: str, content: JsonObj) -> tuple[str, float]:
        rid = self.p.response_id
        fmt = audio_format(self.p.output_format)
        loop = asyncio.get_running_loop()
        loop.run_in_executor(TTS_EXECUTOR, self._synthesize, text, loop)
        spoken_to, audio_ms = 0, 0.0
        while True:
            await asyncio.sleep(0)  # Queue.get() does not yield when chunks are waiting: let the reader run
            got = await self._queue.get()
            if got is None or got is _CANCEL or self.cancel_reason is not None:
                break
            if isinstance(got, Exception):
                log.error("speech synthesis failed: %s", got)
                self._emit(ev.error("tts_failed", f"speech synthesis failed: {got}", type_="server_error"))
                continue
            data, words = got
            for start, length in words:
                if start + length > spoken_to:
                    delta, spoken_to = text[spoken_to : start + length], start + length
                    content["transcript"] += delta
                    self._emit(ev.response_output_audio_transcript_delta(rid, item_id, 0, 0, delta))
            if data:
                audio_ms += fmt.duration_ms(len(data))
                self._conv.audio_ms[item_id] = audio_ms
                self._on_audio()
                self._emit(
                    ev.response_output_audio_delta(rid, item_id, 0, 0, base64.b64encode(data).decode())
                )
        if self.cancel_reason is None and spoken_to < len(text):
            delta = text[spoken_to:]
            content["transcript"] += delta
            self._emit(ev.response_output_audio_transcript_delta(rid, item_id, 0, 0, delta))
        return str(content["transcript"]), audio_ms
