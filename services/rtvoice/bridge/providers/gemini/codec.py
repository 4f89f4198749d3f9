"""Gemini Live wire messages: client message builders and server message decoding
(see docs/providers.md, "Gemini Live").

Client messages are JSON text frames with exactly one top-level camelCase key (``realtimeInput``,
``clientContent``, ``toolResponse``); ``realtimeInput`` carries one field per message, as the SDK sends
it. Server messages arrive as JSON in **binary** frames (text frames are accepted too).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.v1 import frames_pb2 as pb

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def encode(message: dict[str, Any]) -> str:
    """Compact JSON text of a client message."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def decode_server_message(raw: str | bytes) -> dict[str, Any]:
    """Parse one server frame (UTF-8 JSON, usually binary) into a dict.

    Raises ``RealtimeProtocolError`` (``bad_json``) for undecodable bytes, invalid JSON or a non-object.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray | memoryview) else raw
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise RealtimeProtocolError(
            f"Gemini Live sent a frame that is not JSON: {err}", code="bad_json"
        ) from None
    if not isinstance(value, dict):
        raise RealtimeProtocolError(
            f"Gemini Live sent JSON {type(value).__name__}, expected an object", code="bad_json"
        )
    return value


def audio_message(pcm: bytes, sample_rate_hz: int = 16000) -> dict[str, Any]:
    """``realtimeInput.audio``: PCM16 LE mono at ``sample_rate_hz`` as base64."""
    return {
        "realtimeInput": {
            "audio": {"mimeType": f"audio/pcm;rate={sample_rate_hz}", "data": base64.b64encode(pcm).decode()}
        }
    }


def activity_message(start: bool) -> dict[str, Any]:
    """``realtimeInput.activityStart`` / ``activityEnd`` (manual turn detection only)."""
    return {"realtimeInput": {"activityStart" if start else "activityEnd": {}}}


def audio_stream_end_message() -> dict[str, Any]:
    """``realtimeInput.audioStreamEnd``: the microphone paused; the server flushes what it holds."""
    return {"realtimeInput": {"audioStreamEnd": True}}


def text_message(text: str, *, realtime: bool) -> dict[str, Any]:
    """A typed user turn: ``realtimeInput.text`` (Gemini 3.x) or a ``clientContent`` user turn."""
    if realtime:
        return {"realtimeInput": {"text": text}}
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}


def history_message(turns: list[tuple[str, str]]) -> dict[str, Any]:
    """``clientContent`` replaying ``(role, text)`` turns (``user``/``model``) as context, no response."""
    return {
        "clientContent": {
            "turns": [{"role": role, "parts": [{"text": text}]} for role, text in turns],
            "turnComplete": False,
        }
    }


def tool_response_message(call_id: str, name: str, output: str, is_error: bool) -> dict[str, Any]:
    """``toolResponse.functionResponses[{id, name, response: {output|error}}]``.

    ``output`` is parsed as JSON when it is JSON, else sent as a string. An error output that already
    is ``{"error": ...}`` (the tool runtime's shape) is sent as is.
    """
    try:
        value: Any = json.loads(output)
    except ValueError:
        value = output
    if is_error and isinstance(value, dict) and "error" in value:
        response: dict[str, Any] = value
    else:
        response = {"error" if is_error else "output": value}
    return {"toolResponse": {"functionResponses": [{"id": call_id, "name": name, "response": response}]}}


def duration_ms(value: Any) -> int | None:
    """A protobuf JSON duration (``"50s"``, ``"0.5s"``) in ms; ``None`` when absent or malformed."""
    if not isinstance(value, str):
        return None
    m = _DURATION.match(value)
    return round(float(m.group(1)) * 1000) if m else None


def _modality_tokens(details: Any, modality: str) -> int:
    if not isinstance(details, list):
        return 0
    return sum(
        int(d.get("tokenCount") or 0)
        for d in details
        if isinstance(d, dict) and d.get("modality") == modality
    )


def usage_from_metadata(meta: dict[str, Any]) -> pb.Usage:
    """``usageMetadata`` → ``Usage``: prompt → input, response → output, AUDIO details → audio tokens."""
    prompt = int(meta.get("promptTokenCount") or 0)
    response = int(meta.get("responseTokenCount") or 0)
    return pb.Usage(
        input_tokens=prompt,
        output_tokens=response,
        total_tokens=int(meta.get("totalTokenCount") or prompt + response),
        input_audio_tokens=_modality_tokens(meta.get("promptTokensDetails"), "AUDIO"),
        output_audio_tokens=_modality_tokens(meta.get("responseTokensDetails"), "AUDIO"),
    )


def inline_audio(part: dict[str, Any]) -> bytes | None:
    """PCM bytes of an ``inlineData`` audio part; ``None`` for other parts and ``thought`` parts.

    Raises ``RealtimeProtocolError`` (``bad_audio``) for invalid base64, an odd byte length or a non-PCM /
    non-24 kHz type.
    """
    if part.get("thought"):
        return None
    blob = part.get("inlineData")
    if not isinstance(blob, dict):
        return None
    mime = str(blob.get("mimeType") or "audio/pcm")
    if not mime.startswith("audio/pcm") or ("rate=" in mime and "rate=24000" not in mime):
        raise RealtimeProtocolError(f"unexpected Gemini output audio type {mime!r}", code="bad_audio")
    try:
        pcm = base64.b64decode(str(blob.get("data") or ""), validate=True)
    except ValueError:
        raise RealtimeProtocolError("Gemini output audio is not valid base64", code="bad_audio") from None
    if len(pcm) % 2:
        raise RealtimeProtocolError(
            f"Gemini output audio has an odd byte length ({len(pcm)}); PCM16 samples are 2 bytes",
            code="bad_audio",
        )
    return pcm
