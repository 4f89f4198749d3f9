"""One model response of the engine: stream the reply, speak it sentence by sentence, emit GA events.

Event order (OpenAI Realtime GA): ``response.created`` → ``rate_limits.updated`` → for the spoken or
written message: ``response.output_item.added`` → ``conversation.item.added`` →
``response.content_part.added`` → interleaved ``response.output_audio_transcript.delta`` /
``response.output_audio.delta`` (the transcript delta of a word precedes the audio it starts in) →
``output_audio.done`` → ``output_audio_transcript.done`` → ``content_part.done`` → ``output_item.done``
→ ``conversation.item.done``; then, for each function call the responder asked for:
``output_item.added`` → ``conversation.item.added`` → ``response.function_call_arguments.delta`` →
``.done`` → ``output_item.done`` → ``conversation.item.done``; finally ``response.done``. Text modality
uses ``response.output_text.*`` instead of the audio events.

The responder's text is read while earlier sentences are being spoken, so the first audio waits only
for the first sentence. A response whose output holds function calls ends there; the client runs the
tools, adds ``function_call_output`` items and sends ``response.create`` to continue.
:meth:`ResponseRunner.cancel` (``response.cancel`` or barge-in) stops the responder and the synthesis
and still emits every ``.done`` event, ending with ``response.done`` ``cancelled`` and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rtvoice.localrt import events as ev
from rtvoice.localrt import items
from rtvoice.localrt.config import JsonObj, audio_format
from rtvoice.localrt.items import Conversation
from rtvoice.localrt.responder import CHAT_FAILED, Message, Responder, ResponderError, ToolCall
from rtvoice.localrt.sentences import SentenceSplitter
from rtvoice.localrt.speaking import PartAddress, PartSpeaker
from rtvoice.localrt.speech import Speech

log = logging.getLogger(__name__)

Emit = Callable[[ev.Event], None]
_END = object()


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
    tools: list[JsonObj] = field(default_factory=list)


class _MessageOut:
    """The assistant message of a response, opened on its first text (events in GA order)."""

    def __init__(self, runner: ResponseRunner, output_index: int) -> None:
        self.r = runner
        p = runner.p
        self.item_id = ev.new_id("item")
        self.item = items.assistant_item(self.item_id, "in_progress", [])
        self.prev = runner.conv.add(self.item) if p.in_conversation else None
        self.audio = "audio" in p.output_modalities
        runner.emit(ev.response_output_item_added(p.response_id, output_index, self.item))
        if p.in_conversation:
            runner.emit(ev.conversation_item_added(self.item, self.prev))
        part: JsonObj = {"type": "audio", "transcript": ""} if self.audio else {"type": "text", "text": ""}
        runner.emit(ev.response_content_part_added(p.response_id, self.item_id, output_index, 0, part))
        self.content: JsonObj = (
            {"type": "output_audio", "transcript": ""} if self.audio else {"type": "output_text", "text": ""}
        )
        self.item["content"] = [self.content]
        self.output_index = output_index
        self.speaker: PartSpeaker | None = None
        if self.audio:
            self.speaker = PartSpeaker(
                runner.speech, p.voice, p.speed, audio_format(p.output_format), runner.emit,
                PartAddress(p.response_id, self.item_id, output_index), self.content, self._audio_sent,
            )  # fmt: skip

    def _audio_sent(self, total_ms: float) -> None:
        self.r.conv.audio_ms[self.item_id] = total_ms
        self.r.on_audio()

    def write(self, piece: str) -> None:
        """Text modality: one ``response.output_text.delta``."""
        self.content["text"] += piece
        p = self.r.p
        self.r.emit(ev.response_output_text_delta(p.response_id, self.item_id, self.output_index, 0, piece))

    def close(self, cut: bool) -> JsonObj:
        """Emit the closing events of the message; ``cut``: cancelled or stopped at max_output_tokens."""
        p, rid, i = self.r.p, self.r.p.response_id, self.output_index
        if self.audio:
            transcript = str(self.content["transcript"])
            self.r.emit(ev.response_output_audio_done(rid, self.item_id, i, 0))
            self.r.emit(ev.response_output_audio_transcript_done(rid, self.item_id, i, 0, transcript))
            part: JsonObj = {"type": "audio", "transcript": transcript}
        else:
            self.r.emit(ev.response_output_text_done(rid, self.item_id, i, 0, str(self.content["text"])))
            part = {"type": "text", "text": self.content["text"]}
        self.r.emit(ev.response_content_part_done(rid, self.item_id, i, 0, part))
        self.item["status"] = "incomplete" if cut else "completed"
        self.r.emit(ev.response_output_item_done(rid, i, self.item))
        if p.in_conversation:
            self.r.emit(ev.conversation_item_done(self.item, self.prev))
        return self.item


class ResponseRunner:
    """Runs one response as an asyncio task (:meth:`run`). ``history`` returns the messages to answer
    (awaiting pending transcripts); ``on_audio`` is called whenever an audio delta is emitted."""

    def __init__(
        self,
        params: ResponseParams,
        emit: Emit,
        conversation: Conversation,
        responder: Responder,
        speech: Speech,
        history: Callable[[], Awaitable[list[Message]]],
        on_audio: Callable[[], None],
    ) -> None:
        self.p = params
        self.emit = emit
        self.conv = conversation
        self.responder = responder
        self.speech = speech
        self._history = history
        self.on_audio = on_audio
        self.cancel_reason: str | None = None
        self._cancelled = asyncio.Event()
        self._message: _MessageOut | None = None
        self._incomplete = False
        self.done = False

    @property
    def id(self) -> str:
        return self.p.response_id

    def cancel(self, reason: str) -> None:
        """Stop the response (``client_cancelled`` | ``turn_detected``); its ``.done`` events follow."""
        if self.cancel_reason is None and not self.done:
            self.cancel_reason = reason
            self._cancelled.set()
            if self._message is not None and self._message.speaker is not None:
                self._message.speaker.interrupt()

    def _response(self, status: str, **kw: Any) -> JsonObj:
        audio_out = None
        if "audio" in self.p.output_modalities:
            audio_out = {"format": self.p.output_format, "voice": self.p.voice}
        return items.response_object(
            self.p.response_id,
            status,
            conversation_id=self.conv.id if self.p.in_conversation else None,
            output_modalities=self.p.output_modalities,
            audio_output=audio_out,
            metadata=self.p.metadata,
            max_output_tokens=self.p.max_output_tokens,
            **kw,
        )

    async def _until_cancelled(self, aw: Awaitable[Any]) -> tuple[bool, Any]:
        """(True, result) when ``aw`` finished first; (False, None) when the response was cancelled."""
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(self._cancelled.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return False, None

    async def run(self) -> None:
        """Emit the whole response. Responder/TTS failures become ``error`` events, never exceptions."""
        self.emit(ev.response_created(self._response("in_progress")))
        self.emit(ev.rate_limits_updated())
        finished, history = await self._until_cancelled(self._history())
        output: list[JsonObj] = []
        calls: list[ToolCall] = []
        if finished:
            await self._until_cancelled(self._produce(history, calls))
        if self._message is not None:
            output.append(self._message.close(self.cancel_reason is not None or self._incomplete))
        if self.cancel_reason is None:
            output += [self._function_call(call, len(output)) for call in calls]
        status_details: JsonObj | None = None
        if self.cancel_reason is not None:
            status, status_details = "cancelled", {"type": "cancelled", "reason": self.cancel_reason}
        elif self._incomplete:
            status, status_details = "incomplete", {"type": "incomplete", "reason": "max_output_tokens"}
        else:
            status = "completed"
        in_text = sum(items.estimate_text_tokens(m.content) for m in history or [])
        out_text = sum(items.estimate_text_tokens(items.item_text(it)) for it in output)
        audio_ms = self._message.speaker.audio_ms if self._message and self._message.speaker else 0.0
        usage = items.usage(in_text, items.estimate_audio_tokens(self.p.input_audio_ms), out_text,
                            items.estimate_audio_tokens(audio_ms, 20.0))  # fmt: skip
        self.done = True
        self.emit(
            ev.response_done(
                self._response(status, output=output, status_details=status_details, usage_=usage)
            )
        )

    def _open_message(self) -> _MessageOut:
        if self._message is None:
            self._message = _MessageOut(self, 0)
            if self.cancel_reason is not None and self._message.speaker is not None:
                self._message.speaker.interrupt()  # cancelled while the first text was on its way
        return self._message

    async def _produce(self, history: list[Message], calls: list[ToolCall]) -> None:
        """Read the responder; speak (or write) its text as it comes; collect its function calls."""
        sentences: asyncio.Queue[Any] = asyncio.Queue()
        speaking = asyncio.ensure_future(self._speak_all(sentences))
        splitter = SentenceSplitter()
        try:
            async with contextlib.aclosing(self._parts(history)) as parts:
                await self._read(parts, splitter, sentences, calls)
            rest = splitter.flush()
            if rest.strip():
                sentences.put_nowait(rest)
        finally:
            sentences.put_nowait(_END)
            await speaking

    async def _read(
        self,
        parts: AsyncIterator[str | ToolCall],
        splitter: SentenceSplitter,
        sentences: asyncio.Queue[Any],
        calls: list[ToolCall],
    ) -> None:
        """Route each part: text to the message (sentences to the speaker), calls to ``calls``; stops at
        ``max_output_tokens`` (the response is then ``incomplete``)."""
        budget = self.p.max_output_tokens if isinstance(self.p.max_output_tokens, int) else None
        written = ""
        async for piece in parts:
            if isinstance(piece, ToolCall):
                calls.append(piece)
                continue
            if not piece:
                continue
            if budget is not None and items.estimate_text_tokens(written + piece) > budget:
                piece = piece[: max(0, budget * 4 - len(written))]
                self._incomplete = True
            written += piece
            message = self._open_message()
            if message.speaker is None:
                message.write(piece)
            else:
                for sentence in splitter.feed(piece):
                    sentences.put_nowait(sentence)
            if self._incomplete:
                return

    async def _parts(self, history: list[Message]) -> AsyncGenerator[str | ToolCall, None]:
        """The responder's parts; a failure is reported and, if nothing was said yet, apologised for."""
        said = False
        stream = self.responder.stream(history, self.p.instructions, self.p.tools)
        try:
            async for part in stream:
                said = True
                yield part
        except ResponderError as exc:
            log.warning("responder failed: %s", exc)
            self.emit(ev.error("responder_failed", str(exc), type_="server_error"))
            if not said:
                yield CHAT_FAILED
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _speak_all(self, sentences: asyncio.Queue[Any]) -> None:
        while True:
            sentence = await sentences.get()
            if sentence is _END:
                return
            speaker = self._open_message().speaker
            if speaker is not None and not speaker.interrupted and not await speaker.speak(sentence):
                speaker.interrupt()  # synthesis failed: the rest of the answer is not spoken either

    def _function_call(self, call: ToolCall, output_index: int) -> JsonObj:
        """Emit one function-call output item (GA order) and return it."""
        rid = self.p.response_id
        item = items.function_call_item(ev.new_id("item"), call.call_id, call.name, "", "in_progress")
        prev = self.conv.add(item) if self.p.in_conversation else None
        self.emit(ev.response_output_item_added(rid, output_index, item))
        if self.p.in_conversation:
            self.emit(ev.conversation_item_added(item, prev))
        self.emit(
            ev.response_function_call_arguments_delta(
                rid, item["id"], output_index, call.call_id, call.arguments
            )
        )
        self.emit(ev.response_function_call_arguments_done(
            rid, item["id"], output_index, call.call_id, call.name, call.arguments
        ))  # fmt: skip
        item.update(arguments=call.arguments, status="completed")
        self.emit(ev.response_output_item_done(rid, output_index, item))
        if self.p.in_conversation:
            self.emit(ev.conversation_item_done(item, prev))
        return item
