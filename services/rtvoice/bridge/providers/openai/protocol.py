"""OpenAI Realtime wire protocol: session configuration, client events and error classification.

Pure functions, no I/O. Both protocol shapes are covered (docs/providers.md, "OpenAI Realtime"):
GA (``session.type = "realtime"``, nested ``audio.input/output``, ``output_text`` history items) and the
legacy beta shape (flat session, ``OpenAI-Beta: realtime=v1`` header, ``text`` history items). Server
events of the beta shape are
renamed to their GA names on receipt (:data:`BETA_EVENT_RENAMES`), so the rest of the adapter sees GA only.

Audio formats: GA ``audio/pcm`` is PCM16 LE mono at 24000 Hz only; ``audio/pcmu`` / ``audio/pcma`` are
G.711 at 8000 Hz. The provider side uses µ-law when the caller does, so µ-law passes straight through.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from rtvoice.core.audio import G711_ALAW, G711_MULAW, PCM16_24K, AudioFormat
from rtvoice.core.errors import (
    RealtimeAuthError,
    RealtimeError,
    RealtimeProtocolError,
    RealtimeProviderError,
    RealtimeUnsupportedError,
)
from rtvoice.core.settings import AgentSettings, TurnDetection, deep_merge

Shape = Literal["ga", "beta"]

DEFAULT_BASE_URL = "wss://api.openai.com/v1/realtime"
BETA_HEADER = ("OpenAI-Beta", "realtime=v1")

MULAW_8K = AudioFormat(G711_MULAW, 8000)
ALAW_8K = AudioFormat(G711_ALAW, 8000)

#: Beta server event names → GA names (the mapping LiveKit uses for Azure).
BETA_EVENT_RENAMES: dict[str, str] = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "conversation.item.created": "conversation.item.added",
}

#: Error codes that are harmless races: logged, never shown as failures.
BENIGN_ERROR_CODES = frozenset(
    {
        "conversation_already_has_active_response",
        "response_cancel_not_active",
        "input_audio_buffer_commit_empty",
        "item_truncate_invalid_item_id",
        "item_delete_invalid_item_id",
        "unsupported_content_type",
    }
)
#: Errors retrying can never fix (LiveKit's list): the session ends.
AUTH_ERROR_CODES = frozenset({"invalid_api_key", "account_deactivated"})
QUOTA_ERROR_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "beta_api_shape_disabled"})
#: The provider ends the session itself (max duration): the adapter reconnects and replays history.
SESSION_END_CODES = frozenset({"session_expired"})
#: WebSocket close codes the OpenAI SDK's reconnect helper treats as transient.
RETRYABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})

DEFAULT_TRANSCRIPTION_MODEL = {"ga": "gpt-4o-mini-transcribe", "beta": "whisper-1"}


def provider_formats(settings: AgentSettings) -> tuple[AudioFormat, AudioFormat]:
    """(input, output) provider formats: µ-law 8 kHz where the caller uses µ-law, else PCM16 24 kHz."""
    inp = MULAW_8K if settings.audio.input == "g711_mulaw" else PCM16_24K
    out = MULAW_8K if settings.audio.output == "g711_mulaw" else PCM16_24K
    return inp, out


def _ga_format(fmt: AudioFormat) -> dict[str, Any]:
    if fmt.encoding == G711_MULAW:
        return {"type": "audio/pcmu"}
    if fmt.encoding == G711_ALAW:
        return {"type": "audio/pcma"}
    return {"type": "audio/pcm", "rate": 24000}


def _beta_format(fmt: AudioFormat) -> str:
    if fmt.encoding == G711_MULAW:
        return "g711_ulaw"
    if fmt.encoding == G711_ALAW:
        return "g711_alaw"
    return "pcm16"


def turn_detection_config(td: TurnDetection) -> dict[str, Any] | None:
    """The ``turn_detection`` object (same in both shapes); ``None`` = manual turns."""
    if td.type == "none":
        return None
    if td.type == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": td.eagerness,
            "create_response": td.create_response,
            "interrupt_response": td.interrupt_response,
        }
    return {
        "type": "server_vad",
        "threshold": td.threshold,
        "prefix_padding_ms": td.prefix_padding_ms,
        "silence_duration_ms": td.silence_duration_ms,
        "create_response": td.create_response,
        "interrupt_response": td.interrupt_response,
    }


def tools_config(settings: AgentSettings) -> list[dict[str, Any]]:
    """Function declarations of ``settings.tools``."""
    return [
        {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
        for t in settings.tools
    ]


def session_config(
    settings: AgentSettings,
    shape: Shape,
    *,
    voice: str,
    instructions: str,
    turn_detection: TurnDetection,
    temperature: float | None,
    input_format: AudioFormat,
    output_format: AudioFormat,
    with_overrides: bool,
) -> dict[str, Any]:
    """The ``session`` object of the first ``session.update`` of a connection.

    ``modalities: audio_text`` turns input transcription on, ``audio`` turns it off (saves tokens).
    ``temperature`` is only sent in the beta shape (GA rejects the whole update).
    ``providerParamOverrides`` are deep-merged last when ``with_overrides``.
    """
    transcription = (
        {"model": DEFAULT_TRANSCRIPTION_MODEL[shape]} if settings.modalities == "audio_text" else None
    )
    td = turn_detection_config(turn_detection)
    session: dict[str, Any]
    if shape == "ga":
        session = {
            "type": "realtime",
            "instructions": instructions,
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": _ga_format(input_format),
                    "transcription": transcription,
                    "turn_detection": td,
                },
                "output": {"format": _ga_format(output_format), "voice": voice},
            },
        }
    else:
        session = {
            "instructions": instructions,
            "modalities": ["text", "audio"],
            "voice": voice,
            "input_audio_format": _beta_format(input_format),
            "output_audio_format": _beta_format(output_format),
            "input_audio_transcription": transcription,
            "turn_detection": td,
        }
        if temperature is not None:
            session["temperature"] = clamp_beta_temperature(temperature)
    if settings.tools:
        session["tools"] = tools_config(settings)
        session["tool_choice"] = "auto"
    if with_overrides and settings.provider_param_overrides:
        session = deep_merge(session, settings.provider_param_overrides)
    return session


def clamp_beta_temperature(value: float) -> float:
    """Beta accepts 0.6–1.2; values outside are clamped to that range."""
    return min(1.2, max(0.6, float(value)))


def dumps(event: dict[str, Any]) -> str:
    """Compact JSON text of one client event."""
    return json.dumps(event, separators=(",", ":"))


def session_update(session: dict[str, Any], shape: Shape) -> str:
    """``session.update`` with a partial session; GA requires ``type: realtime`` in every update."""
    if shape == "ga" and "type" not in session:
        session = {"type": "realtime", **session}
    return dumps({"type": "session.update", "session": session})


def partial_voice(voice: str, shape: Shape) -> dict[str, Any]:
    return {"audio": {"output": {"voice": voice}}} if shape == "ga" else {"voice": voice}


def partial_turn_detection(td: TurnDetection, shape: Shape) -> dict[str, Any]:
    cfg = turn_detection_config(td)
    return {"audio": {"input": {"turn_detection": cfg}}} if shape == "ga" else {"turn_detection": cfg}


def append_audio(b64_audio: str) -> str:
    """``input_audio_buffer.append`` built by concatenation (hot path: no json.dumps of the payload)."""
    return '{"type":"input_audio_buffer.append","audio":"' + b64_audio + '"}'


def message_item(role: str, text: str, shape: Shape, item_id: str) -> str:
    """``conversation.item.create`` of a text message: user ``input_text``, assistant ``output_text``.

    Beta uses ``text``. ``item_id`` is client-chosen (≤ 32 chars, :func:`new_item_id`) for the history.
    """
    if role == "user":
        ctype = "input_text"
    else:
        ctype = "output_text" if shape == "ga" else "text"
    item = {"id": item_id, "type": "message", "role": role, "content": [{"type": ctype, "text": text}]}
    return dumps({"type": "conversation.item.create", "item": item})


def new_item_id() -> str:
    """A client-chosen item id: ``rtv_`` + 24 hex chars (LiveKit caps ids at 32 chars)."""
    return "rtv_" + secrets.token_hex(12)


def function_call_output(call_id: str, output: str) -> str:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return dumps({"type": "conversation.item.create", "item": item})


def truncate(item_id: str, content_index: int, audio_end_ms: int) -> str:
    return dumps(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": audio_end_ms,
        }
    )


def delete_item(item_id: str) -> str:
    return dumps({"type": "conversation.item.delete", "item_id": item_id})


def response_cancel(response_id: str | None) -> str:
    return dumps({"type": "response.cancel", **({"response_id": response_id} if response_id else {})})


RESPONSE_CREATE = dumps({"type": "response.create"})
COMMIT = dumps({"type": "input_audio_buffer.commit"})


def classify_error(err: dict[str, Any]) -> RealtimeError | None:
    """The typed error for an ``error`` event's ``error`` object, or ``None`` for a benign race.

    Auth codes → fatal ``RealtimeAuthError``; quota/billing → fatal non-retryable ``RealtimeProviderError``;
    ``server_error`` → retryable ``RealtimeProviderError``; ``unsupported*`` codes (the local engine's
    ``unsupported_voice``) → non-fatal ``RealtimeUnsupportedError``; other request errors → non-fatal
    ``RealtimeProtocolError`` (the socket stays open). ``session_expired`` → ``None``: the close
    that follows is reconnected with history replay.
    """
    code = str(err.get("code") or "")
    etype = str(err.get("type") or "")
    message = str(err.get("message") or code or etype or "provider error")
    if code in BENIGN_ERROR_CODES or code in SESSION_END_CODES:
        return None
    if code in AUTH_ERROR_CODES or "authentication" in message.lower():
        return RealtimeAuthError(message, code=code or "invalid_api_key", fatal=True)
    if code in QUOTA_ERROR_CODES:
        return RealtimeProviderError(message, code=code, retryable=False, fatal=True)
    if etype == "server_error":
        return RealtimeProviderError(message, code=code or "server_error", retryable=True)
    if code.startswith("unsupported"):
        return RealtimeUnsupportedError(message, code=code)
    return RealtimeProtocolError(message, code=code or etype or "invalid_request_error")


def classify_close(code: int | None, reason: str) -> RealtimeError | None:
    """The typed fatal error for a close the adapter must not retry, or ``None`` when a reconnect may succeed.

    OpenAI closes with 3000/4000-range codes whose reason is ``<error.type>.<error.code>``; those
    are fatal only for auth and quota codes. 1000 and the SDK's transient codes (1001, 1006, 1011, ...)
    are retried; any other code (1002, 1007, 1008, ...) ends the session.
    """
    if code is None or code == 1000 or code in RETRYABLE_CLOSE_CODES:
        return None
    if code >= 3000:
        etype, _, ecode = reason.partition(".")
        typed = classify_error({"type": etype, "code": ecode, "message": reason})
        return typed if typed is not None and typed.fatal else None
    return RealtimeProviderError(
        f"provider closed the connection (code {code}{': ' + reason if reason else ''})",
        code="provider_closed",
        retryable=False,
        fatal=True,
    )
