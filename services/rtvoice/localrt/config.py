"""The GA realtime session object of the engine: defaults, ``session.update`` partial merge and validation.

Rules (docs/providers.md, "The local engine"): ``session.type`` must be ``"realtime"``; unknown fields
(``temperature`` included) reject the *whole* update with ``unknown_parameter``; ``audio/pcm`` is 24000 Hz
only; ``output_modalities`` is ``["audio"]`` or ``["text"]``; the voice cannot change once the assistant
has produced audio (``cannot_update_voice``). Errors are :class:`RequestError` (→ an ``error`` event).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from rtvoice.core.audio import G711_ALAW, G711_MULAW, PCM16, AudioFormat
from rtvoice.localrt.events import new_id

JsonObj = dict[str, Any]
SESSION_TTL_S = 3600

FORMAT_TYPES = {"audio/pcm": PCM16, "audio/pcmu": G711_MULAW, "audio/pcma": G711_ALAW}
SEMANTIC_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 400}
"""semantic_vad runs as server_vad with this silence (ms) per ``eagerness``: lower eagerness waits longer."""

_TOP_KEYS = {
    "type", "model", "instructions", "output_modalities", "audio", "tools", "tool_choice",
    "max_output_tokens", "tracing", "truncation", "prompt", "include", "parallel_tool_calls", "reasoning",
    "id", "object", "expires_at",
}  # fmt: skip
_AUDIO_KEYS = {"input", "output"}
_INPUT_KEYS = {"format", "transcription", "noise_reduction", "turn_detection"}
_OUTPUT_KEYS = {"format", "voice", "speed"}
_SERVER_VAD_KEYS = {
    "type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response",
    "idle_timeout_ms",
}  # fmt: skip
_SEMANTIC_VAD_KEYS = {"type", "eagerness", "create_response", "interrupt_response"}


class RequestError(Exception):
    """A refused client request: becomes ``error {type, code, message, param}``; the session survives."""

    def __init__(
        self, code: str, message: str, param: str | None = None, type_: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.type = type_


def default_turn_detection(kind: str = "server_vad") -> JsonObj:
    """OpenAI defaults: ``server_vad`` (threshold 0.5, prefix 300 ms, silence 500 ms) or ``semantic_vad``."""
    if kind == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def default_session(model: str, voice: str = "marin", instructions: str = "") -> JsonObj:
    """A new GA session object (``session.created``): PCM 24 kHz both ways, server_vad, audio output."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "expires_at": int(time.time()) + SESSION_TTL_S,
        "output_modalities": ["audio"],
        "instructions": instructions,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_turn_detection(),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice, "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
    }


def audio_format(fmt: JsonObj) -> AudioFormat:
    """The :class:`AudioFormat` of a validated GA format object (PCM 24 kHz, µ-law or A-law 8 kHz)."""
    encoding = FORMAT_TYPES[fmt["type"]]
    return AudioFormat(encoding, 24000 if encoding == PCM16 else 8000)


def _check_keys(obj: Any, allowed: set[str], path: str) -> None:
    if not isinstance(obj, dict):
        raise RequestError("invalid_type", f"Invalid type for '{path}': expected an object.", path)
    for key in obj:
        if key not in allowed:
            raise RequestError("unknown_parameter", f"Unknown parameter: '{path}.{key}'.", f"{path}.{key}")


def _merge(base: JsonObj, patch: JsonObj) -> JsonObj:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("format", "voice"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_format(fmt: Any, path: str) -> JsonObj:
    """Validate a GA audio format object; returns it normalised (``rate`` filled for audio/pcm)."""
    if not isinstance(fmt, dict) or fmt.get("type") not in FORMAT_TYPES:
        raise RequestError(
            "invalid_value",
            f"Invalid value for '{path}.type': expected one of audio/pcm, audio/pcmu, audio/pcma.",
            f"{path}.type",
        )
    _check_keys(fmt, {"type", "rate"}, path)
    if fmt["type"] == "audio/pcm":
        rate = fmt.get("rate", 24000)
        if rate != 24000:
            raise RequestError(
                "invalid_value",
                f"Invalid value for '{path}.rate': {rate}. audio/pcm supports only 24000 Hz.",
                f"{path}.rate",
            )
        return {"type": "audio/pcm", "rate": 24000}
    return {"type": fmt["type"]}


def _check_turn_detection(td: Any, previous: Any, path: str) -> JsonObj | None:
    if td is None:
        return None
    if not isinstance(td, dict) or td.get("type") not in ("server_vad", "semantic_vad"):
        raise RequestError(
            "invalid_value",
            f"Invalid value for '{path}.type': expected server_vad or semantic_vad.",
            f"{path}.type",
        )
    kind = td["type"]
    _check_keys(td, _SERVER_VAD_KEYS if kind == "server_vad" else _SEMANTIC_VAD_KEYS, path)
    base = (
        previous
        if isinstance(previous, dict) and previous.get("type") == kind
        else default_turn_detection(kind)
    )
    merged = {**base, **td}
    if kind == "server_vad":
        threshold = merged["threshold"]
        if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            raise RequestError(
                "invalid_value", f"Invalid value for '{path}.threshold': must be 0..1.", f"{path}.threshold"
            )
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            if not isinstance(merged[key], int) or merged[key] < 0:
                raise RequestError(
                    "invalid_value",
                    f"Invalid value for '{path}.{key}': must be an integer >= 0.",
                    f"{path}.{key}",
                )
    elif merged["eagerness"] not in SEMANTIC_SILENCE_MS:
        raise RequestError(
            "invalid_value",
            f"Invalid value for '{path}.eagerness': low, medium, high or auto.",
            f"{path}.eagerness",
        )
    return merged


def apply_session_update(current: JsonObj, update: Any, *, assistant_audio_present: bool) -> JsonObj:
    """Merge a ``session.update`` ``session`` object into ``current``; returns the new full session.

    Raises :class:`RequestError` (and changes nothing) on any invalid field.
    """
    if not isinstance(update, dict):
        raise RequestError("invalid_type", "Invalid type for 'session': expected an object.", "session")
    if "type" not in update:
        raise RequestError(
            "missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type"
        )
    if update["type"] != "realtime":
        raise RequestError(
            "invalid_value",
            "Invalid value for 'session.type': this endpoint serves 'realtime'.",
            "session.type",
        )
    _check_keys(update, _TOP_KEYS, "session")
    audio = update.get("audio", {})
    _check_keys(audio, _AUDIO_KEYS, "session.audio")
    _check_keys(audio.get("input", {}), _INPUT_KEYS, "session.audio.input")
    _check_keys(audio.get("output", {}), _OUTPUT_KEYS, "session.audio.output")
    if "model" in update and update["model"] != current["model"]:
        raise RequestError("invalid_value", "The model of a session cannot be changed.", "session.model")
    patch = {k: v for k, v in update.items() if k not in ("id", "object", "expires_at")}
    new = _merge(current, patch)
    if "output_modalities" in update and update["output_modalities"] not in (["audio"], ["text"]):
        raise RequestError(
            "invalid_value",
            'Invalid value for \'session.output_modalities\': use ["audio"] or ["text"].',
            "session.output_modalities",
        )
    if not isinstance(new.get("instructions"), str):
        raise RequestError("invalid_type", "'session.instructions' must be a string.", "session.instructions")
    new_in, new_out = new["audio"]["input"], new["audio"]["output"]
    new_in["format"] = check_format(new_in["format"], "session.audio.input.format")
    new_out["format"] = check_format(new_out["format"], "session.audio.output.format")
    new_in["turn_detection"] = _check_turn_detection(
        audio.get("input", {}).get("turn_detection", new_in["turn_detection"]),
        current["audio"]["input"]["turn_detection"],
        "session.audio.input.turn_detection",
    )
    voice = new_out["voice"]
    if not isinstance(voice, str | dict):
        raise RequestError(
            "invalid_type", "'session.audio.output.voice' must be a string.", "session.audio.output.voice"
        )
    if voice != current["audio"]["output"]["voice"] and assistant_audio_present:
        raise RequestError(
            "cannot_update_voice",
            "Cannot update a conversation's voice if assistant audio is present.",
            "session.audio.output.voice",
        )
    speed = new_out.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.25 <= speed <= 1.5:
        raise RequestError(
            "invalid_value", "'session.audio.output.speed' must be 0.25..1.5.", "session.audio.output.speed"
        )
    mot = new["max_output_tokens"]
    if mot != "inf" and not (isinstance(mot, int) and 1 <= mot <= 4096):
        raise RequestError(
            "invalid_value",
            "'session.max_output_tokens' must be 1..4096 or 'inf'.",
            "session.max_output_tokens",
        )
    return new


def voice_name(session: JsonObj) -> str | None:
    """The session voice as a string (custom voices ``{"id": ...}`` give their id)."""
    voice = session["audio"]["output"]["voice"]
    return voice.get("id") if isinstance(voice, dict) else voice
