"""Caller protocol v1: the JSON control events between a caller and the ingress (docs/caller-protocol.md).

Binary WebSocket messages are raw audio in the negotiated format; text messages are JSON objects with a
``type``. This module parses caller → ingress events into :class:`ParsedEvent` (the ``ClientFrame`` to relay
to the bridge, or a :class:`SessionStartRequest`) and renders bridge ``ServerFrame`` s as ingress → caller
event dicts. Every malformed input raises a typed ``RealtimeError`` (``protocol`` or ``audio_format`` kind)
whose :func:`error_event` is sent back to the caller; nothing here touches sockets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rtvoice.core.audio import AudioFormat
from rtvoice.core.errors import (
    ERROR_KIND_NAMES,
    RealtimeAudioFormatError,
    RealtimeError,
    RealtimeProtocolError,
)
from rtvoice.core.settings import CallerAudioFormat
from rtvoice.v1 import frames_pb2 as pb

PROTOCOL_VERSION = "v1"
CALLER_FORMATS: tuple[str, ...] = get_args(CallerAudioFormat)
"""Audio formats a caller may negotiate: ``pcm16_16k`` (default), ``pcm16_24k``, ``g711_mulaw``."""
DEFAULT_INPUT_FORMAT = "pcm16_16k"
DEFAULT_OUTPUT_FORMAT = "pcm16_16k"
MAX_METADATA_ITEMS = 16
MAX_METADATA_CHARS = 256

_ROLE_NAMES = {pb.ROLE_USER: "user", pb.ROLE_ASSISTANT: "assistant", pb.ROLE_UNSPECIFIED: "unspecified"}


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SessionStartEvent(_Event):
    type: Literal["session.start"]
    input_format: str = DEFAULT_INPUT_FORMAT
    output_format: str = DEFAULT_OUTPUT_FORMAT
    overrides: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)


class PlaybackMarkEvent(_Event):
    type: Literal["playback.mark"]
    item_id: str = Field(min_length=1, max_length=256)
    played_ms: int = Field(ge=0, le=2**32 - 1)
    content_index: int = Field(0, ge=0, le=2**32 - 1)


class InterruptEvent(_Event):
    type: Literal["interrupt"]


class TurnDetectionModel(_Event):
    type: Literal["server_vad", "semantic_vad", "none"]
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(None, ge=0, le=5000)
    silence_duration_ms: int | None = Field(None, ge=0, le=10000)
    eagerness: Literal["low", "medium", "high", "auto", ""] = ""


class SteerEvent(_Event):
    type: Literal["steer"]
    voice: str | None = Field(None, min_length=1, max_length=64)
    instructions: str | None = Field(None, max_length=32768)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    turn_detection: TurnDetectionModel | None = None


class TextEvent(_Event):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=8192)


class TurnEndEvent(_Event):
    type: Literal["turn.end"]


class SessionEndEvent(_Event):
    type: Literal["session.end"]


ClientEvent = Annotated[
    SessionStartEvent
    | PlaybackMarkEvent
    | InterruptEvent
    | SteerEvent
    | TextEvent
    | TurnEndEvent
    | SessionEndEvent,
    Field(discriminator="type"),
]
_CLIENT_EVENT = TypeAdapter[Any](ClientEvent)
CLIENT_EVENT_TYPES: tuple[str, ...] = (
    "session.start",
    "playback.mark",
    "interrupt",
    "steer",
    "text",
    "turn.end",
    "session.end",
)


@dataclass(frozen=True, slots=True)
class SessionStartRequest:
    """A valid ``session.start``: caller formats, per-session overrides (JSON object text), metadata."""

    input_format: AudioFormat
    output_format: AudioFormat
    overrides_json: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """One caller event: its ``type``, and either the frame to relay or the session start request."""

    type: str
    frame: pb.ClientFrame | None = None
    start: SessionStartRequest | None = None


def caller_format(name: object, which: str) -> AudioFormat:
    """Resolve a caller format name; raises ``RealtimeAudioFormatError`` (``unknown_format``) naming the
    accepted formats."""
    if not isinstance(name, str) or name not in CALLER_FORMATS:
        raise RealtimeAudioFormatError(
            f"{which} {name!r} is not supported; expected one of {', '.join(CALLER_FORMATS)}",
            code="unknown_format",
        )
    return AudioFormat.parse(name)


def _validation_message(err: ValidationError) -> str:
    parts = []
    for item in err.errors()[:3]:
        loc = ".".join(str(p) for p in item["loc"][1:]) or "event"
        parts.append(f"{loc}: {item['msg']}")
    return "; ".join(parts)


def parse_client_event(text: str) -> ParsedEvent:
    """Parse one text message from a caller.

    Raises ``RealtimeProtocolError`` with code ``bad_json`` (not JSON), ``not_an_object``, ``missing_type``,
    ``unknown_type`` (a ``type`` outside :data:`CLIENT_EVENT_TYPES`) or ``bad_field`` (a field missing,
    unknown, of the wrong type or out of range); ``RealtimeAudioFormatError`` (``unknown_format``) for a
    ``session.start`` naming a format outside :data:`CALLER_FORMATS`.
    """
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise RealtimeProtocolError(f"text message is not valid JSON: {err}", code="bad_json") from None
    if not isinstance(doc, dict):
        raise RealtimeProtocolError(
            "a text message must be a JSON object with a 'type'", code="not_an_object"
        )
    etype = doc.get("type")
    if not isinstance(etype, str):
        raise RealtimeProtocolError("the event has no string 'type'", code="missing_type")
    if etype not in CLIENT_EVENT_TYPES:
        raise RealtimeProtocolError(
            f"unknown event type {etype[:64]!r}; expected one of {', '.join(CLIENT_EVENT_TYPES)}",
            code="unknown_type",
        )
    try:
        event = _CLIENT_EVENT.validate_python(doc)
    except ValidationError as err:
        raise RealtimeProtocolError(f"bad {etype}: {_validation_message(err)}", code="bad_field") from None
    return _to_parsed(event)


def _to_parsed(event: Any) -> ParsedEvent:
    if isinstance(event, SessionStartEvent):
        return ParsedEvent(event.type, start=_start_request(event))
    if isinstance(event, PlaybackMarkEvent):
        mark = pb.PlaybackMark(
            item_id=event.item_id, played_ms=event.played_ms, content_index=event.content_index
        )
        return ParsedEvent(event.type, pb.ClientFrame(playback_mark=mark))
    if isinstance(event, InterruptEvent):
        return ParsedEvent(event.type, pb.ClientFrame(interrupt=pb.InterruptFrame()))
    if isinstance(event, SteerEvent):
        return ParsedEvent(event.type, pb.ClientFrame(steer=_steer_frame(event)))
    if isinstance(event, TextEvent):
        return ParsedEvent(event.type, pb.ClientFrame(text=pb.TextInput(text=event.text)))
    if isinstance(event, TurnEndEvent):
        return ParsedEvent(event.type, pb.ClientFrame(end_of_turn=pb.EndOfTurn()))
    return ParsedEvent("session.end")


def _start_request(event: SessionStartEvent) -> SessionStartRequest:
    in_fmt = caller_format(event.input_format, "input_format")
    out_fmt = caller_format(event.output_format, "output_format")
    if len(event.metadata) > MAX_METADATA_ITEMS or any(
        len(k) > MAX_METADATA_CHARS or len(v) > MAX_METADATA_CHARS for k, v in event.metadata.items()
    ):
        raise RealtimeProtocolError(
            f"metadata allows at most {MAX_METADATA_ITEMS} entries of {MAX_METADATA_CHARS} characters",
            code="bad_field",
        )
    overrides = json.dumps(event.overrides, separators=(",", ":")) if event.overrides else ""
    return SessionStartRequest(in_fmt, out_fmt, overrides, dict(event.metadata))


def _steer_frame(event: SteerEvent) -> pb.SteerFrame:
    if (
        event.voice is None
        and event.instructions is None
        and event.temperature is None
        and event.turn_detection is None
    ):
        raise RealtimeProtocolError(
            "steer needs at least one of voice, instructions, temperature, turn_detection", code="bad_field"
        )
    steer = pb.SteerFrame()
    if event.voice is not None:
        steer.voice = event.voice
    if event.instructions is not None:
        steer.instructions = event.instructions
    if event.temperature is not None:
        steer.temperature = event.temperature
    td = event.turn_detection
    if td is not None:
        steer.turn_detection.type = td.type
        steer.turn_detection.eagerness = td.eagerness
        if td.threshold is not None:
            steer.turn_detection.threshold = td.threshold
        if td.prefix_padding_ms is not None:
            steer.turn_detection.prefix_padding_ms = td.prefix_padding_ms
        if td.silence_duration_ms is not None:
            steer.turn_detection.silence_duration_ms = td.silence_duration_ms
    return steer


# ---------------------------------------------------------------------------------------------------------
# ingress → caller


def dumps(event: dict[str, Any]) -> str:
    """Compact JSON text of one event."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def error_event(err: RealtimeError | pb.ErrorFrame) -> dict[str, Any]:
    """``{"type": "error", "kind", "code", "message", "retryable", "fatal"}`` of a typed error, plus
    ``retry_after_ms`` when the error says when to retry (e.g. code ``full``)."""
    frame = err.to_frame() if isinstance(err, RealtimeError) else err
    event: dict[str, Any] = {
        "type": "error",
        "kind": ERROR_KIND_NAMES.get(frame.kind, "unspecified"),
        "code": frame.code,
        "message": frame.message,
        "retryable": frame.retryable,
        "fatal": frame.fatal,
    }
    if frame.retry_after_ms:
        event["retry_after_ms"] = frame.retry_after_ms
    return event


def session_started_event(
    session_id: str, ready: pb.SessionReady, start: SessionStartRequest, limits: dict[str, Any]
) -> dict[str, Any]:
    """``session.started``: ids, the negotiated formats, the provider/model/voice and the session limits."""
    return {
        "type": "session.started",
        "protocol": PROTOCOL_VERSION,
        "session_id": session_id,
        "input_format": start.input_format.name,
        "output_format": start.output_format.name,
        "provider": ready.provider,
        "model": ready.model,
        "voice": ready.voice,
        "limits": limits,
    }


def session_ended_event(reason: str, dropped_audio_frames: int) -> dict[str, Any]:
    """``session.ended``: why the session ended and how many agent audio frames a slow caller lost."""
    return {"type": "session.ended", "reason": reason, "dropped_audio_frames": dropped_audio_frames}


def audio_started_event(
    item_id: str, content_index: int, response_id: str, latency_ms: float | None
) -> dict[str, Any]:
    """``audio.started``: sent before the first binary audio of each agent item."""
    return {
        "type": "audio.started",
        "item_id": item_id,
        "content_index": content_index,
        "response_id": response_id,
        "latency_ms": None if latency_ms is None else round(latency_ms, 1),
    }


def _json_object(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text


def event_from_server_frame(frame: pb.ServerFrame) -> dict[str, Any] | None:
    """The caller event of a bridge frame that maps 1:1 (transcripts, VAD, responses, clear, tools).

    Returns ``None`` for kinds the session handles itself (``ready``, ``audio``, ``error``, ``end``) and
    for ``response_done`` (which needs the session's latency), see :func:`response_done_event`.
    """
    kind = frame.WhichOneof("frame")
    if kind == "transcript":
        t = frame.transcript
        return {
            "type": "transcript",
            "role": _ROLE_NAMES.get(t.role, "unspecified"),
            "item_id": t.item_id,
            "text": t.text,
            "final": t.final,
        }
    if kind == "speech_started":
        s = frame.speech_started
        return {"type": "speech.started", "item_id": s.item_id, "audio_start_ms": s.audio_start_ms}
    if kind == "speech_stopped":
        e = frame.speech_stopped
        return {"type": "speech.stopped", "item_id": e.item_id, "audio_end_ms": e.audio_end_ms}
    if kind == "response_started":
        return {"type": "response.started", "response_id": frame.response_started.response_id}
    if kind == "clear_audio":
        return {"type": "audio.clear", "item_id": frame.clear_audio.item_id}
    if kind == "tool_call":
        c = frame.tool_call
        return {
            "type": "tool.call",
            "call_id": c.call_id,
            "name": c.name,
            "arguments": _json_object(c.arguments_json),
        }
    if kind == "tool_result":
        r = frame.tool_result
        return {
            "type": "tool.result",
            "call_id": r.call_id,
            "name": r.name,
            "is_error": r.is_error,
            "duration_ms": r.duration_ms,
        }
    if kind == "tool_cancellation":
        return {"type": "tool.cancelled", "call_ids": list(frame.tool_cancellation.call_ids)}
    return None


def response_done_event(done: pb.ResponseDone, latency_ms: float | None) -> dict[str, Any]:
    """``response.done`` with status, reason, token usage and the first-audio latency seen at the ingress."""
    u = done.usage
    return {
        "type": "response.done",
        "response_id": done.response_id,
        "status": done.status,
        "status_reason": done.status_reason,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
            "input_audio_tokens": u.input_audio_tokens,
            "output_audio_tokens": u.output_audio_tokens,
        },
        "latency_ms": None if latency_ms is None else round(latency_ms, 1),
    }
