"""Builders of OpenAI Realtime **GA** server events, one small function per event type.

Each returns a JSON-ready ``dict`` with ``type`` and a fresh server ``event_id``; send it as one text frame.
Shapes follow ``openai.types.realtime.*`` (validated against ``RealtimeServerEvent`` in the tests) and
docs/providers.md ("OpenAI Realtime"). Item and response objects come from :mod:`rtvoice.localrt.items`.
Reused by test fakes of the OpenAI server, so names mirror the event types
(``response.output_audio.delta`` → :func:`response_output_audio_delta`).
"""

from __future__ import annotations

import uuid
from typing import Any

Event = dict[str, Any]
JsonObj = dict[str, Any]


def new_id(prefix: str) -> str:
    """An OpenAI-style id: ``prefix`` + ``_`` + 20 hex chars (``item_…``, ``resp_…``, ``event_…``)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _event(type_: str, **fields: Any) -> Event:
    return {"type": type_, "event_id": new_id("event"), **fields}


# --- session -------------------------------------------------------------------------------------------


def session_created(session: JsonObj) -> Event:
    """``session.created {session}``: the first frame after the upgrade."""
    return _event("session.created", session=session)


def session_updated(session: JsonObj) -> Event:
    """``session.updated {session}``: the full effective session after a ``session.update``."""
    return _event("session.updated", session=session)


def error(
    code: str | None,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    event_id: str | None = None,
) -> Event:
    """``error {error:{type, code, message, param, event_id}}``; ``event_id`` echoes the client event's."""
    return _event(
        "error",
        error={"type": type_, "code": code, "message": message, "param": param, "event_id": event_id},
    )


def rate_limits_updated(rate_limits: list[JsonObj] | None = None) -> Event:
    """``rate_limits.updated``; default: generous request/token limits (an offline engine has none)."""
    limits = rate_limits or [
        {"name": "requests", "limit": 10000, "remaining": 9999, "reset_seconds": 0.006},
        {"name": "tokens", "limit": 1000000, "remaining": 999000, "reset_seconds": 0.06},
    ]
    return _event("rate_limits.updated", rate_limits=limits)


# --- input audio buffer --------------------------------------------------------------------------------


def input_audio_buffer_speech_started(audio_start_ms: int, item_id: str) -> Event:
    """``input_audio_buffer.speech_started``: ``audio_start_ms`` on the input clock, the future user item."""
    return _event("input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id)


def input_audio_buffer_speech_stopped(audio_end_ms: int, item_id: str) -> Event:
    """``input_audio_buffer.speech_stopped``: ``audio_end_ms`` = where the speech ended (input clock)."""
    return _event("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id)


def input_audio_buffer_committed(item_id: str, previous_item_id: str | None) -> Event:
    """``input_audio_buffer.committed``: the buffer became user item ``item_id``."""
    return _event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_item_id)


def input_audio_buffer_cleared() -> Event:
    """``input_audio_buffer.cleared`` (reply to ``input_audio_buffer.clear``)."""
    return _event("input_audio_buffer.cleared")


def input_audio_buffer_timeout_triggered(audio_start_ms: int, audio_end_ms: int, item_id: str) -> Event:
    """``input_audio_buffer.timeout_triggered`` (server_vad ``idle_timeout_ms``)."""
    return _event(
        "input_audio_buffer.timeout_triggered",
        audio_start_ms=audio_start_ms,
        audio_end_ms=audio_end_ms,
        item_id=item_id,
    )


# --- conversation --------------------------------------------------------------------------------------


def conversation_item_added(item: JsonObj, previous_item_id: str | None) -> Event:
    """``conversation.item.added`` (GA): the item has started (model output: empty content, in_progress)."""
    return _event("conversation.item.added", item=item, previous_item_id=previous_item_id)


def conversation_item_done(item: JsonObj, previous_item_id: str | None) -> Event:
    """``conversation.item.done`` (GA): the item is final."""
    return _event("conversation.item.done", item=item, previous_item_id=previous_item_id)


def conversation_item_truncated(item_id: str, content_index: int, audio_end_ms: int) -> Event:
    """``conversation.item.truncated`` (reply to ``conversation.item.truncate``)."""
    return _event(
        "conversation.item.truncated", item_id=item_id, content_index=content_index, audio_end_ms=audio_end_ms
    )


def conversation_item_deleted(item_id: str) -> Event:
    """``conversation.item.deleted`` (reply to ``conversation.item.delete``)."""
    return _event("conversation.item.deleted", item_id=item_id)


def conversation_item_retrieved(item: JsonObj) -> Event:
    """``conversation.item.retrieved`` (reply to ``conversation.item.retrieve``)."""
    return _event("conversation.item.retrieved", item=item)


def conversation_item_input_audio_transcription_delta(item_id: str, content_index: int, delta: str) -> Event:
    """``conversation.item.input_audio_transcription.delta``."""
    return _event(
        "conversation.item.input_audio_transcription.delta",
        item_id=item_id,
        content_index=content_index,
        delta=delta,
    )


def conversation_item_input_audio_transcription_completed(
    item_id: str, content_index: int, transcript: str, seconds: float
) -> Event:
    """``…input_audio_transcription.completed`` with duration usage (``seconds`` of audio transcribed)."""
    return _event(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=content_index,
        transcript=transcript,
        usage={"type": "duration", "seconds": round(seconds, 3)},
    )


def conversation_item_input_audio_transcription_failed(
    item_id: str, content_index: int, code: str, message: str
) -> Event:
    """``…input_audio_transcription.failed {error}``."""
    return _event(
        "conversation.item.input_audio_transcription.failed",
        item_id=item_id,
        content_index=content_index,
        error={"type": "server_error", "code": code, "message": message, "param": None},
    )


# --- responses -----------------------------------------------------------------------------------------


def response_created(response: JsonObj) -> Event:
    """``response.created {response}`` (status ``in_progress``)."""
    return _event("response.created", response=response)


def response_done(response: JsonObj) -> Event:
    """``response.done {response}``: always sent, whatever the outcome."""
    return _event("response.done", response=response)


def response_output_item_added(response_id: str, output_index: int, item: JsonObj) -> Event:
    """``response.output_item.added``."""
    return _event("response.output_item.added", response_id=response_id, output_index=output_index, item=item)


def response_output_item_done(response_id: str, output_index: int, item: JsonObj) -> Event:
    """``response.output_item.done``."""
    return _event("response.output_item.done", response_id=response_id, output_index=output_index, item=item)


def _part_event(
    type_: str, response_id: str, item_id: str, output_index: int, content_index: int, **fields: Any
) -> Event:
    return _event(
        type_,
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        **fields,
    )


def response_content_part_added(
    response_id: str, item_id: str, output_index: int, content_index: int, part: JsonObj
) -> Event:
    """``response.content_part.added {part:{type:"audio"|"text", ...}}``."""
    return _part_event(
        "response.content_part.added", response_id, item_id, output_index, content_index, part=part
    )


def response_content_part_done(
    response_id: str, item_id: str, output_index: int, content_index: int, part: JsonObj
) -> Event:
    """``response.content_part.done``."""
    return _part_event(
        "response.content_part.done", response_id, item_id, output_index, content_index, part=part
    )


def response_output_audio_delta(
    response_id: str, item_id: str, output_index: int, content_index: int, delta: str
) -> Event:
    """``response.output_audio.delta {delta}``: ``delta`` is base64 audio in the session output format."""
    return _part_event(
        "response.output_audio.delta", response_id, item_id, output_index, content_index, delta=delta
    )


def response_output_audio_done(
    response_id: str, item_id: str, output_index: int, content_index: int
) -> Event:
    """``response.output_audio.done``."""
    return _part_event("response.output_audio.done", response_id, item_id, output_index, content_index)


def response_output_audio_transcript_delta(
    response_id: str, item_id: str, output_index: int, content_index: int, delta: str
) -> Event:
    """``response.output_audio_transcript.delta {delta}``."""
    return _part_event(
        "response.output_audio_transcript.delta",
        response_id,
        item_id,
        output_index,
        content_index,
        delta=delta,
    )


def response_output_audio_transcript_done(
    response_id: str, item_id: str, output_index: int, content_index: int, transcript: str
) -> Event:
    """``response.output_audio_transcript.done {transcript}``."""
    return _part_event(
        "response.output_audio_transcript.done",
        response_id,
        item_id,
        output_index,
        content_index,
        transcript=transcript,
    )


def response_output_text_delta(
    response_id: str, item_id: str, output_index: int, content_index: int, delta: str
) -> Event:
    """``response.output_text.delta {delta}`` (``output_modalities: ["text"]``)."""
    return _part_event(
        "response.output_text.delta", response_id, item_id, output_index, content_index, delta=delta
    )


def response_output_text_done(
    response_id: str, item_id: str, output_index: int, content_index: int, text: str
) -> Event:
    """``response.output_text.done {text}``."""
    return _part_event(
        "response.output_text.done", response_id, item_id, output_index, content_index, text=text
    )


def response_function_call_arguments_delta(
    response_id: str, item_id: str, output_index: int, call_id: str, delta: str
) -> Event:
    """``response.function_call_arguments.delta`` (``delta``: a piece of the JSON arguments string)."""
    return _event(
        "response.function_call_arguments.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        call_id=call_id,
        delta=delta,
    )


def response_function_call_arguments_done(
    response_id: str, item_id: str, output_index: int, call_id: str, name: str, arguments: str
) -> Event:
    """``response.function_call_arguments.done {call_id, name, arguments}`` (``arguments``: JSON string)."""
    return _event(
        "response.function_call_arguments.done",
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        call_id=call_id,
        name=name,
        arguments=arguments,
    )
