"""Gemini Live server messages → neutral frames, with the turn state the protocol leaves implicit.

Gemini has no response ids, no ``response.created``, no speech events and no final transcripts; this
tracker infers them (docs/providers.md, "Gemini Live", "Server messages"):

* ``response_started``: the first model content (audio, text, output transcription, tool call) after
  the last ``turnComplete``; ids are ``gemini_resp_<n>`` (response) and ``gemini_item_<n>`` (its audio
  and assistant transcript); the caller's turns are ``gemini_user_<n>``.
* ``interrupted`` → ``clear_audio`` for the current (or, after ``turnComplete``, the last) item; the rest
  of that response is dropped and its ``turnComplete`` becomes ``response_done`` ``cancelled`` /
  ``turn_detected``.
* ``turnComplete`` → final transcripts (accumulated deltas, or the ``finished`` text), then
  ``response_done`` (``completed``) with the ``usageMetadata`` received since the last one.
* ``toolCall`` → ``tool_call`` frames (``args`` object → ``arguments_json``);
  ``toolCallCancellation`` → ``tool_cancellation``.
* ``voiceActivity`` / ``voiceActivityDetectionSignal`` → ``speech_started`` / ``speech_stopped``.

Control information (``setupComplete``, resumption handles, ``goAway``, ``turnComplete``) is returned in
the :class:`~rtvoice.bridge.providers.wire.Step` for the shared connection core.
"""

from __future__ import annotations

import json
from typing import Any

from rtvoice.core.audio import PCM16_24K
from rtvoice.core.errors import RealtimeError
from rtvoice.v1 import frames_pb2 as pb

from ..history import ConversationHistory
from ..wire import Step
from .codec import duration_ms, inline_audio, usage_from_metadata

_OUTPUT_FORMAT = PCM16_24K.to_proto()


def _frame(**kwargs: Any) -> pb.ServerFrame:
    return pb.ServerFrame(**kwargs)


def final_transcript(
    history: ConversationHistory,
    transcripts: bool,
    role: pb.Role,
    item: str | None,
    text: str,
    frames: list[pb.ServerFrame],
) -> None:
    """A final transcript of ``item`` (when there is text), also kept in the replay history."""
    if item is None or not text:
        return
    if transcripts:
        frames.append(_frame(transcript=pb.TranscriptFrame(role=role, item_id=item, text=text, final=True)))
    history.set_text(item, "user" if role == pb.ROLE_USER else "assistant", text)


class UserTurn:
    """The caller's side: turn ids ``gemini_user_<n>``, VAD events, input transcription, typed turns."""

    def __init__(self, history: ConversationHistory, transcripts: bool) -> None:
        self.history = history
        self.transcripts = transcripts
        self._seq = 0
        self._text_seq = 0
        self._item: str | None = None
        self._text = ""

    def item(self) -> str:
        """The id of the caller's current turn (a new one after the last turn finished)."""
        if self._item is None:
            self._seq += 1
            self._item = f"gemini_user_{self._seq}"
        return self._item

    def note_text(self, text: str) -> None:
        """A typed user turn, kept for history replay."""
        self._text_seq += 1
        self.history.set_text(f"gemini_text_{self._text_seq}", "user", text)

    def voice_activity(self, msg: dict[str, Any], frames: list[pb.ServerFrame]) -> None:
        """``voiceActivity`` / ``voiceActivityDetectionSignal`` → ``speech_started`` / ``speech_stopped``."""
        kind = ""
        offset_ms = 0
        va = msg.get("voiceActivity")
        if isinstance(va, dict):
            kind = {"ACTIVITY_START": "start", "ACTIVITY_END": "end"}.get(
                str(va.get("voiceActivityType")), ""
            )
            offset_ms = duration_ms(va.get("audioOffset")) or 0
        sig = msg.get("voiceActivityDetectionSignal")
        if isinstance(sig, dict):
            kind = {"VAD_SIGNAL_TYPE_SOS": "start", "VAD_SIGNAL_TYPE_EOS": "end"}.get(
                str(sig.get("vadSignalType")), kind
            )
        if kind == "start":
            frames.append(self.speech_started(offset_ms))
        elif kind == "end":
            frames.append(self.speech_stopped(offset_ms))

    def speech_started(self, audio_start_ms: int = 0) -> pb.ServerFrame:
        """``speech_started`` for the caller's current (new) turn."""
        return _frame(speech_started=pb.SpeechStarted(audio_start_ms=audio_start_ms, item_id=self.item()))

    def speech_stopped(self, audio_end_ms: int = 0) -> pb.ServerFrame:
        """``speech_stopped`` for the caller's current turn."""
        return _frame(speech_stopped=pb.SpeechStopped(audio_end_ms=audio_end_ms, item_id=self.item()))

    def transcription(self, tr: dict[str, Any], frames: list[pb.ServerFrame]) -> None:
        """``inputTranscription``: deltas, and the final text when ``finished``."""
        text = str(tr.get("text") or "")
        if text:
            item = self.item()
            self._text += text
            if self.transcripts:
                frames.append(
                    _frame(transcript=pb.TranscriptFrame(role=pb.ROLE_USER, item_id=item, text=text))
                )
        if tr.get("finished"):
            frames.extend(self.finish())

    def finish(self) -> list[pb.ServerFrame]:
        """The caller's turn is over: its final transcript (if any); the next audio starts a new turn."""
        frames: list[pb.ServerFrame] = []
        final_transcript(self.history, self.transcripts, pb.ROLE_USER, self._item, self._text, frames)
        self._item = None
        self._text = ""
        return frames


class GeminiTurnTracker:
    """Translates server messages of one logical session (across reconnects) into ``ServerFrame``s.

    ``transcripts`` = False (modalities ``audio``) suppresses transcript frames; ``history`` (for replay
    when no resumption handle exists) is still kept from whatever transcripts and typed text there are.
    """

    def __init__(self, *, transcripts: bool) -> None:
        self.transcripts = transcripts
        self.response_id: str | None = None
        self.item_id: str | None = None
        self.last_item_id: str | None = None
        self.interrupted = False
        self.client_cancelled = False
        self.pending_calls: dict[str, str] = {}
        self.history = ConversationHistory()
        self.user = UserTurn(self.history, transcripts)
        self._seq = 0
        self._audio_seq = 0
        self._out_text = ""
        self._usage: pb.Usage | None = None

    # -- state queries -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A response is being generated or a tool call awaits its result: not a moment to reconnect."""
        return self.response_id is not None or bool(self.pending_calls)

    # -- client-side events --------------------------------------------------------------------------
    def client_interrupt(self) -> None:
        """The caller barged in explicitly: drop the rest of the current response locally."""
        if self.response_id is not None:
            self.client_cancelled = True

    def connection_lost(self) -> list[pb.ServerFrame]:
        """The connection dropped: close the open response and withdraw pending tool calls."""
        frames: list[pb.ServerFrame] = []
        if self.pending_calls:
            frames.append(_frame(tool_cancellation=pb.ToolCancellation(call_ids=list(self.pending_calls))))
            self.pending_calls.clear()
        if self.response_id is not None:
            frames.extend(self._finish_transcripts())
            frames.append(self._done("incomplete", "connection_lost"))
        return frames

    # -- server messages -----------------------------------------------------------------------------
    def handle(self, msg: dict[str, Any]) -> Step:
        """Translate one decoded server message; content is processed before end-of-turn flags."""
        step = Step(setup_complete="setupComplete" in msg)
        upd = msg.get("sessionResumptionUpdate")
        if isinstance(upd, dict) and upd.get("resumable") and upd.get("newHandle"):
            step.handle = str(upd["newHandle"])
        if isinstance(msg.get("goAway"), dict):
            step.go_away_ms = duration_ms(msg["goAway"].get("timeLeft")) or 0
        self.user.voice_activity(msg, step.frames)
        cancel = msg.get("toolCallCancellation")
        if isinstance(cancel, dict):
            ids = [str(i) for i in cancel.get("ids") or []]
            for i in ids:
                self.pending_calls.pop(i, None)
            if ids:
                step.frames.append(_frame(tool_cancellation=pb.ToolCancellation(call_ids=ids)))
        if isinstance(msg.get("usageMetadata"), dict):
            self._usage = usage_from_metadata(msg["usageMetadata"])
        content = msg.get("serverContent")
        content = content if isinstance(content, dict) else {}
        self._content(content, step.frames)
        if isinstance(msg.get("toolCall"), dict):
            self._tool_calls(msg["toolCall"], step.frames)
        if content.get("turnComplete"):
            step.turn_complete = True
            step.frames.extend(self._turn_complete())
        return step

    def _content(self, content: dict[str, Any], frames: list[pb.ServerFrame]) -> None:
        itr = content.get("inputTranscription")
        if isinstance(itr, dict):
            self.user.transcription(itr, frames)
        if content.get("interrupted"):
            self._interrupted(frames)
            return
        turn = content.get("modelTurn")
        parts = turn.get("parts") if isinstance(turn, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict):
                self._part(part, frames)
        otr = content.get("outputTranscription")
        if isinstance(otr, dict) and otr.get("text"):
            self._assistant_text(str(otr["text"]), frames)

    def _part(self, part: dict[str, Any], frames: list[pb.ServerFrame]) -> None:
        try:
            pcm = inline_audio(part)
        except RealtimeError as err:
            frames.append(_frame(error=err.to_frame()))
            return
        if pcm:
            item = self._ensure_response(frames)
            if self.interrupted or self.client_cancelled:
                return
            self._audio_seq += 1
            frames.append(
                _frame(
                    audio=pb.AudioFrame(
                        data=pcm,
                        format=_OUTPUT_FORMAT,
                        sequence=self._audio_seq,
                        item_id=item,
                        content_index=0,
                    )
                )
            )
        elif isinstance(part.get("text"), str) and part["text"] and not part.get("thought"):
            self._assistant_text(part["text"], frames)

    def _assistant_text(self, text: str, frames: list[pb.ServerFrame]) -> None:
        item = self._ensure_response(frames)
        if self.interrupted or self.client_cancelled:
            return
        self._out_text += text
        if self.transcripts:
            frames.append(
                _frame(transcript=pb.TranscriptFrame(role=pb.ROLE_ASSISTANT, item_id=item, text=text))
            )

    def _ensure_response(self, frames: list[pb.ServerFrame]) -> str:
        if self.response_id is None or self.item_id is None:
            self._seq += 1
            self.response_id = f"gemini_resp_{self._seq}"
            self.item_id = f"gemini_item_{self._seq}"
            self.last_item_id = self.item_id
            self.interrupted = False
            self.client_cancelled = False
            self._out_text = ""
            self.history.add(self.user.item(), "user")
            self.history.add(self.item_id, "assistant")
            frames.append(_frame(response_started=pb.ResponseStarted(response_id=self.response_id)))
        return self.item_id

    def _tool_calls(self, tool_call: dict[str, Any], frames: list[pb.ServerFrame]) -> None:
        for fc in tool_call.get("functionCalls") or []:
            if not isinstance(fc, dict):
                continue
            self._ensure_response(frames)
            call_id, name = str(fc.get("id") or ""), str(fc.get("name") or "")
            args = fc.get("args") if isinstance(fc.get("args"), dict) else {}
            self.pending_calls[call_id] = name
            frames.append(
                _frame(tool_call=pb.ToolCall(call_id=call_id, name=name, arguments_json=json.dumps(args)))
            )

    def tool_result_sent(self, call_id: str) -> None:
        """The client answered ``call_id``; it no longer holds up a reconnect."""
        self.pending_calls.pop(call_id, None)

    def _interrupted(self, frames: list[pb.ServerFrame]) -> None:
        if self.response_id is not None:
            if not self.interrupted:
                self.interrupted = True
                frames.append(_frame(clear_audio=pb.ClearAudio(item_id=self.item_id or "")))
        elif self.last_item_id is not None:
            # [observed] interrupted after turnComplete: the caller is still playing the finished turn.
            frames.append(_frame(clear_audio=pb.ClearAudio(item_id=self.last_item_id)))

    def _turn_complete(self) -> list[pb.ServerFrame]:
        frames = self._finish_transcripts()
        if self.response_id is not None:
            if self.interrupted:
                frames.append(self._done("cancelled", "turn_detected"))
            elif self.client_cancelled:
                frames.append(self._done("cancelled", "client_cancelled"))
            else:
                frames.append(self._done("completed", ""))
        return frames

    def _finish_transcripts(self) -> list[pb.ServerFrame]:
        frames = self.user.finish()
        final_transcript(
            self.history, self.transcripts, pb.ROLE_ASSISTANT, self.item_id, self._out_text, frames
        )
        self._out_text = ""
        return frames

    def _done(self, status: str, reason: str) -> pb.ServerFrame:
        frame = _frame(
            response_done=pb.ResponseDone(
                response_id=self.response_id or "", status=status, status_reason=reason, usage=self._usage
            )
        )
        self._usage = None
        self.response_id = None
        self.item_id = None
        return frame
