"""Translation of OpenAI Realtime server events (GA names) into neutral ``ServerFrame`` messages.

Keeps the response state the adapter needs: the active response, an epoch counter that drops audio
deltas of a response cancelled by barge-in (they may still arrive after ``response.cancel``), the audio
received per assistant item (so a truncate never exceeds it, §A.7), whether the assistant has spoken on
this connection (OpenAI then refuses a voice change, ``cannot_update_voice``), and the conversation
history for replay. See ``shared/protocols.md`` §A.4 and §C for the mapping.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from rtvoice.bridge.providers.history import ConversationHistory
from rtvoice.bridge.providers.openai_protocol import classify_error
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
    """What the adapter knows about responses and items of the current provider connection."""

    def __init__(self) -> None:
        self.epoch = 0
        self.response_epoch: dict[str, int] = {}
        self.active_response_id: str | None = None
        self.response_requested = False
        self.user_speaking = False
        self.item_bytes: dict[str, int] = {}
        self.item_content_index: dict[str, int] = {}
        self.truncated: set[str] = set()
        self.assistant_audio_present = False

    @property
    def busy(self) -> bool:
        """A response is running or was asked for (a second ``response.create`` would be refused)."""
        return self.active_response_id is not None or self.response_requested

    def new_connection(self) -> None:
        """A fresh provider session: nothing active, no assistant audio yet."""
        self.active_response_id = None
        self.response_requested = False
        self.user_speaking = False
        self.assistant_audio_present = False
        self.response_epoch.clear()
        self.item_bytes.clear()
        self.item_content_index.clear()
        self.truncated.clear()

    def is_stale(self, response_id: str) -> bool:
        return self.response_epoch.get(response_id, self.epoch) != self.epoch


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
    """Turns server events into frames passed to ``emit``; ``handle`` returns typed errors to the adapter.

    ``transcripts`` = ``modalities == audio_text``: transcript frames for both sides, else none (the
    history still records assistant transcripts for replay).
    """

    def __init__(
        self,
        output_format: AudioFormat,
        transcripts: bool,
        history: ConversationHistory,
        emit: Callable[[pb.ServerFrame], None],
    ) -> None:
        self.state = ResponseState()
        self.history = history
        self.transcripts = transcripts
        self._emit = emit
        self._out_fmt = output_format.to_proto()

    def handle(self, evt: dict[str, Any]) -> RealtimeError | None:
        etype: str = evt["type"]
        if etype == "response.output_audio.delta":
            self._audio_delta(evt)
            return None
        handler = self._HANDLERS.get(etype)
        if handler is not None:
            return handler(self, evt)
        if etype not in _IGNORED:
            log.debug("unhandled provider event %s", etype)
        return None

    def _audio_delta(self, evt: dict[str, Any]) -> None:
        st = self.state
        if st.is_stale(evt.get("response_id", "")):
            return  # late delta of a response cancelled by barge-in
        data = base64.b64decode(evt["delta"])
        item_id = evt["item_id"]
        st.item_bytes[item_id] = st.item_bytes.get(item_id, 0) + len(data)
        content_index = int(evt.get("content_index") or 0)
        st.item_content_index[item_id] = content_index
        st.assistant_audio_present = True
        self._emit(
            pb.ServerFrame(
                audio=pb.AudioFrame(
                    data=data, format=self._out_fmt, item_id=item_id, content_index=content_index
                )
            )
        )

    def _audio_done(self, evt: dict[str, Any]) -> None:
        if self.state.is_stale(evt.get("response_id", "")):
            return
        # An empty audio frame marks the end of the item's audio: the session flushes its resampler.
        self._emit(pb.ServerFrame(audio=pb.AudioFrame(format=self._out_fmt, item_id=evt.get("item_id", ""))))

    def _transcript(self, role: pb.Role, item_id: str, text: str, final: bool) -> None:
        if self.transcripts:
            self._emit(
                pb.ServerFrame(
                    transcript=pb.TranscriptFrame(role=role, item_id=item_id, text=text, final=final)
                )
            )

    def _assistant_delta(self, evt: dict[str, Any]) -> None:
        if not self.state.is_stale(evt.get("response_id", "")):
            self._transcript(pb.ROLE_ASSISTANT, evt.get("item_id", ""), evt.get("delta", ""), False)

    def _assistant_done(self, evt: dict[str, Any]) -> None:
        item_id = evt.get("item_id", "")
        text = evt.get("transcript", evt.get("text", "")) or ""
        self.history.set_text(item_id, "assistant", text)
        self._transcript(pb.ROLE_ASSISTANT, item_id, text, True)

    def _user_delta(self, evt: dict[str, Any]) -> None:
        self._transcript(pb.ROLE_USER, evt.get("item_id", ""), evt.get("delta", ""), False)

    def _user_done(self, evt: dict[str, Any]) -> None:
        item_id = evt.get("item_id", "")
        text = evt.get("transcript", "") or ""
        self.history.set_text(item_id, "user", text)
        self._transcript(pb.ROLE_USER, item_id, text, True)

    def _user_failed(self, evt: dict[str, Any]) -> RealtimeError:
        err = evt.get("error") or {}
        return RealtimeProviderError(
            f"input transcription failed: {err.get('message') or err.get('code') or 'unknown'}",
            code="transcription_failed",
            retryable=True,
        )

    def _item_added(self, evt: dict[str, Any]) -> None:
        item = evt.get("item") or {}
        if item.get("type") == "message" and item.get("id"):
            self.history.add(item["id"], str(item.get("role", "")))

    def _item_deleted(self, evt: dict[str, Any]) -> None:
        self.history.remove(evt.get("item_id", ""))

    def _speech_started(self, evt: dict[str, Any]) -> None:
        self.state.user_speaking = True
        self._emit(
            pb.ServerFrame(
                speech_started=pb.SpeechStarted(
                    audio_start_ms=int(evt.get("audio_start_ms") or 0), item_id=evt.get("item_id", "")
                )
            )
        )

    def _speech_stopped(self, evt: dict[str, Any]) -> None:
        self.state.user_speaking = False
        self._emit(
            pb.ServerFrame(
                speech_stopped=pb.SpeechStopped(
                    audio_end_ms=int(evt.get("audio_end_ms") or 0), item_id=evt.get("item_id", "")
                )
            )
        )

    def _response_created(self, evt: dict[str, Any]) -> None:
        rid = (evt.get("response") or {}).get("id", "")
        st = self.state
        st.active_response_id = rid
        st.response_requested = False
        st.response_epoch[rid] = st.epoch
        self._emit(pb.ServerFrame(response_started=pb.ResponseStarted(response_id=rid)))

    def _response_done(self, evt: dict[str, Any]) -> RealtimeError | None:
        resp = evt.get("response") or {}
        rid = resp.get("id", "")
        st = self.state
        if st.active_response_id == rid:
            st.active_response_id = None
        st.response_epoch.pop(rid, None)
        details = resp.get("status_details") or {}
        status = str(resp.get("status") or "completed")
        err = details.get("error") or {}
        reason = str(details.get("reason") or err.get("code") or "")
        self._emit(
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

    def _function_call(self, evt: dict[str, Any]) -> None:
        if self.state.is_stale(evt.get("response_id", "")):
            return
        self._emit(
            pb.ServerFrame(
                tool_call=pb.ToolCall(
                    call_id=evt.get("call_id", ""),
                    name=evt.get("name", ""),
                    arguments_json=evt.get("arguments") or "{}",
                )
            )
        )

    def _error(self, evt: dict[str, Any]) -> RealtimeError | None:
        err = evt.get("error") or {}
        typed = classify_error(err)
        if typed is None:
            log.info("provider: %s (%s)", err.get("code") or err.get("type"), err.get("message", ""))
        return typed

    _HANDLERS: ClassVar[dict[str, Callable[[EventTranslator, dict[str, Any]], RealtimeError | None]]] = {
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
        "input_audio_buffer.speech_started": _speech_started,
        "input_audio_buffer.speech_stopped": _speech_stopped,
        "response.created": _response_created,
        "response.done": _response_done,
        "response.function_call_arguments.done": _function_call,
        "error": _error,
    }
