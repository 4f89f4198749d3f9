"""Sans-IO translation of OpenAI Realtime server events (GA names) into neutral ``ServerFrame`` messages.

:meth:`EventTranslator.handle` turns one parsed event into a :class:`~rtvoice.bridge.providers.wire.Step`
(frames, a typed error, ``turn_complete`` at ``response.done``). The translator alone keeps the
per-connection response state (:class:`ResponseState`): the active response, whether one was asked for,
whether the user is speaking, the content index of each assistant item (a truncate names it), whether the
assistant has spoken on this connection (OpenAI then refuses a voice change, ``cannot_update_voice``), and
it feeds the conversation history for replay. What a barge-in cut is not its business: the session's
``BargeIn`` drops late output of cut items. Speech times are passed on as the connection reports them
(ms of audio this connection received); the connection core maps them to the session clock.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from rtvoice.bridge.providers.history import ConversationHistory
from rtvoice.bridge.providers.openai.protocol import classify_error
from rtvoice.bridge.providers.wire import Step
from rtvoice.core.audio import AudioFormat
from rtvoice.core.errors import RealtimeError, RealtimeProviderError
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger(__name__)

_IGNORED = frozenset(
    {
        "session.created",
        "session.updated",
        "conversation.created",
        "conversation.item.done",
        "conversation.item.truncated",
        "conversation.item.retrieved",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "rate_limits.updated",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "conversation.item.input_audio_transcription.segment",
    }
)


class ResponseState:
    """What is known about responses and items of the current provider connection (read-only outside
    :class:`EventTranslator`)."""

    def __init__(self) -> None:
        self.active_response_id: str | None = None
        self.response_requested = False
        self.user_speaking = False
        self.item_content_index: dict[str, int] = {}
        self.assistant_audio_present = False

    @property
    def busy(self) -> bool:
        """A response is running or was asked for (a second ``response.create`` would be refused)."""
        return self.active_response_id is not None or self.response_requested


def usage_frame(usage: dict[str, Any] | None) -> pb.Usage:
    """``response.done.response.usage`` → ``Usage``."""
    u = usage or {}
    return pb.Usage(
        input_tokens=int(u.get("input_tokens") or 0),
        output_tokens=int(u.get("output_tokens") or 0),
        total_tokens=int(u.get("total_tokens") or 0),
        input_audio_tokens=int((u.get("input_token_details") or {}).get("audio_tokens") or 0),
        output_audio_tokens=int((u.get("output_token_details") or {}).get("audio_tokens") or 0),
    )


class EventTranslator:
    """Turns server events into :class:`Step` s.

    ``transcripts`` = ``modalities == audio_text``: transcript frames for both sides, else none (the
    history still records assistant transcripts for replay).
    """

    def __init__(
        self,
        output_format: AudioFormat,
        transcripts: bool,
        history: ConversationHistory,
    ) -> None:
        self.state = ResponseState()
        self.history = history
        self.transcripts = transcripts
        self.out_fmt = output_format.to_proto()
        self._frames: list[pb.ServerFrame] = []

    def handle(self, evt: dict[str, Any]) -> Step:
        """One server event (GA type names) → frames and control."""
        etype: str = evt["type"]
        self._frames = []
        if etype == "response.output_audio.delta":  # the hot path: 50 a second while the agent speaks
            self._audio_delta(evt)
            return Step(frames=self._frames)
        step = Step(frames=self._frames, turn_complete=etype == "response.done")
        handler = _HANDLERS.get(etype)
        if handler is not None:
            step.error = handler(self, evt)
        elif etype not in _IGNORED:
            log.debug("unhandled provider event %s", etype)
        return step

    def emit(self, frame: pb.ServerFrame) -> None:
        self._frames.append(frame)

    # -- the adapter's requests (the only way the state changes from outside) --------------------------

    def note_response_requested(self) -> None:
        """``response.create`` was sent: busy until ``response.created``."""
        self.state.response_requested = True

    def forget_response(self) -> None:
        """The session gave up on the running or requested response (watchdog): not busy any more."""
        self.state.active_response_id = None
        self.state.response_requested = False

    def new_connection(self) -> None:
        """A fresh provider session: nothing active, no assistant audio yet, no known items."""
        self.state = ResponseState()

    def connection_lost(self) -> list[pb.ServerFrame]:
        """The connection dropped: the response it was running ends ``incomplete``."""
        rid = self.state.active_response_id
        self.new_connection()
        if rid is None:
            return []
        done = pb.ResponseDone(response_id=rid, status="incomplete", status_reason="provider_disconnected")
        return [pb.ServerFrame(response_done=done)]

    def _audio_delta(self, evt: dict[str, Any]) -> None:
        st = self.state
        data = base64.b64decode(evt["delta"])
        item_id = evt["item_id"]
        content_index = int(evt.get("content_index") or 0)
        st.item_content_index[item_id] = content_index
        st.assistant_audio_present = True
        self.emit(
            pb.ServerFrame(
                audio=pb.AudioFrame(
                    data=data, format=self.out_fmt, item_id=item_id, content_index=content_index
                )
            )
        )

    def transcript(self, role: pb.Role, item_id: str, text: str, final: bool) -> None:
        """A transcript frame (only with ``modalities: audio_text``)."""
        if self.transcripts:
            self.emit(
                pb.ServerFrame(
                    transcript=pb.TranscriptFrame(role=role, item_id=item_id, text=text, final=final)
                )
            )


def _audio_done(t: EventTranslator, evt: dict[str, Any]) -> None:
    # An empty audio frame marks the end of the item's audio: the session flushes its resampler.
    t.emit(pb.ServerFrame(audio=pb.AudioFrame(format=t.out_fmt, item_id=evt.get("item_id", ""))))


def _assistant_delta(t: EventTranslator, evt: dict[str, Any]) -> None:
    t.transcript(pb.ROLE_ASSISTANT, evt.get("item_id", ""), evt.get("delta", ""), False)


def _assistant_done(t: EventTranslator, evt: dict[str, Any]) -> None:
    item_id = evt.get("item_id", "")
    text = evt.get("transcript", evt.get("text", "")) or ""
    t.history.set_text(item_id, "assistant", text)
    t.transcript(pb.ROLE_ASSISTANT, item_id, text, True)


def _user_delta(t: EventTranslator, evt: dict[str, Any]) -> None:
    t.transcript(pb.ROLE_USER, evt.get("item_id", ""), evt.get("delta", ""), False)


def _user_done(t: EventTranslator, evt: dict[str, Any]) -> None:
    item_id = evt.get("item_id", "")
    text = evt.get("transcript", "") or ""
    t.history.set_text(item_id, "user", text)
    t.transcript(pb.ROLE_USER, item_id, text, True)


def _user_failed(t: EventTranslator, evt: dict[str, Any]) -> RealtimeError:
    err = evt.get("error") or {}
    return RealtimeProviderError(
        f"input transcription failed: {err.get('message') or err.get('code') or 'unknown'}",
        code="transcription_failed",
        retryable=True,
    )


def _item_added(t: EventTranslator, evt: dict[str, Any]) -> None:
    item = evt.get("item") or {}
    if item.get("type") == "message" and item.get("id"):
        t.history.add(item["id"], str(item.get("role", "")))


def _item_deleted(t: EventTranslator, evt: dict[str, Any]) -> None:
    t.history.remove(evt.get("item_id", ""))


def _speech(t: EventTranslator, evt: dict[str, Any]) -> None:
    """VAD ``speech_started`` / ``speech_stopped``; times are ms of audio this connection received."""
    started = evt["type"] == "input_audio_buffer.speech_started"
    t.state.user_speaking = started
    item_id = evt.get("item_id", "")
    if started:
        ms = int(evt.get("audio_start_ms") or 0)
        t.emit(pb.ServerFrame(speech_started=pb.SpeechStarted(audio_start_ms=ms, item_id=item_id)))
    else:
        ms = int(evt.get("audio_end_ms") or 0)
        t.emit(pb.ServerFrame(speech_stopped=pb.SpeechStopped(audio_end_ms=ms, item_id=item_id)))


def _response_created(t: EventTranslator, evt: dict[str, Any]) -> None:
    rid = (evt.get("response") or {}).get("id", "")
    st = t.state
    st.active_response_id = rid
    st.response_requested = False
    t.emit(pb.ServerFrame(response_started=pb.ResponseStarted(response_id=rid)))


def _response_done(t: EventTranslator, evt: dict[str, Any]) -> RealtimeError | None:
    resp = evt.get("response") or {}
    rid = resp.get("id", "")
    st = t.state
    if st.active_response_id == rid:
        st.active_response_id = None
    details = resp.get("status_details") or {}
    status = str(resp.get("status") or "completed")
    err = details.get("error") or {}
    reason = str(details.get("reason") or err.get("code") or "")
    t.emit(
        pb.ServerFrame(
            response_done=pb.ResponseDone(
                response_id=rid, status=status, status_reason=reason, usage=usage_frame(resp.get("usage"))
            )
        )
    )
    if status == "failed":
        return RealtimeProviderError(
            f"response failed: {err.get('message') or reason or 'unknown'}",
            code=reason or "response_failed",
            retryable=True,
        )
    return None


def _function_call(t: EventTranslator, evt: dict[str, Any]) -> None:
    t.emit(
        pb.ServerFrame(
            tool_call=pb.ToolCall(
                call_id=evt.get("call_id", ""),
                name=evt.get("name", ""),
                arguments_json=evt.get("arguments") or "{}",
            )
        )
    )


def _error(t: EventTranslator, evt: dict[str, Any]) -> RealtimeError | None:
    err = evt.get("error") or {}
    typed = classify_error(err)
    if typed is None:
        log.info("provider: %s (%s)", err.get("code") or err.get("type"), err.get("message", ""))
    return typed


_HANDLERS: dict[str, Callable[[EventTranslator, dict[str, Any]], RealtimeError | None]] = {
    "response.output_audio.done": _audio_done,
    "response.output_audio_transcript.delta": _assistant_delta,
    "response.output_audio_transcript.done": _assistant_done,
    "response.output_text.delta": _assistant_delta,
    "response.output_text.done": _assistant_done,
    "conversation.item.input_audio_transcription.delta": _user_delta,
    "conversation.item.input_audio_transcription.completed": _user_done,
    "conversation.item.input_audio_transcription.failed": _user_failed,
    "conversation.item.added": _item_added,
    "conversation.item.deleted": _item_deleted,
    "input_audio_buffer.speech_started": _speech,
    "input_audio_buffer.speech_stopped": _speech,
    "response.created": _response_created,
    "response.done": _response_done,
    "response.function_call_arguments.done": _function_call,
    "error": _error,
}
