"""Effective settings of one bridge session: the agent settings, the caller's safe per-session overrides
(``SessionStart.overrides_json``) and the caller's audio formats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, get_args

from rtvoice.core.audio import AudioFormat
from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.core.settings import AgentSettings, CallerAudioFormat, SettingsError
from rtvoice.v1 import frames_pb2 as pb

#: camelCase fields of VoiceAgent.spec a caller may override per session.
SAFE_OVERRIDE_FIELDS = frozenset({"voice", "instructions", "modalities", "turnDetection", "temperature"})
_SETTINGS_FORMATS = frozenset(get_args(CallerAudioFormat))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """``settings`` (with ``audio.input/output`` set to the caller formats when they have a settings
    name) and the caller formats ``caller_input`` / ``caller_output``."""

    settings: AgentSettings
    caller_input: AudioFormat
    caller_output: AudioFormat


def _caller_format(msg: pb.AudioFormat, default: str, has: bool) -> AudioFormat:
    if not has or msg.encoding == pb.AUDIO_ENCODING_UNSPECIFIED:
        return AudioFormat.parse(default)
    return AudioFormat.from_proto(msg)


def parse_overrides(text: str) -> dict[str, Any]:
    """``overrides_json`` → dict. Raises ``RealtimeProtocolError`` (``bad_overrides`` /
    ``override_not_allowed``) for bad JSON, a non-object, or a field outside :data:`SAFE_OVERRIDE_FIELDS`."""
    if not text.strip():
        return {}
    try:
        overrides = json.loads(text)
    except ValueError:
        raise RealtimeProtocolError(
            "SessionStart.overrides_json is not valid JSON", code="bad_overrides"
        ) from None
    if not isinstance(overrides, dict):
        raise RealtimeProtocolError("SessionStart.overrides_json must be a JSON object", code="bad_overrides")
    refused = sorted(set(overrides) - SAFE_OVERRIDE_FIELDS)
    if refused:
        raise RealtimeProtocolError(
            f"per-session overrides may not change {', '.join(refused)}; allowed: "
            f"{', '.join(sorted(SAFE_OVERRIDE_FIELDS))}",
            code="override_not_allowed",
        )
    return overrides


def session_config(base: AgentSettings, start: pb.SessionStart) -> SessionConfig:
    """The effective configuration of a session.

    Raises ``RealtimeProtocolError`` (overrides, code ``invalid_overrides`` for values the settings
    reject) or ``RealtimeAudioFormatError`` (unknown caller format).
    """
    overrides = parse_overrides(start.overrides_json)
    caller_in = _caller_format(start.input_format, base.audio.input, start.HasField("input_format"))
    caller_out = _caller_format(start.output_format, base.audio.output, start.HasField("output_format"))
    audio = {
        k: f.name for k, f in (("input", caller_in), ("output", caller_out)) if f.name in _SETTINGS_FORMATS
    }
    if audio:
        overrides = {**overrides, "audio": audio}
    try:
        settings = base.with_overrides(overrides) if overrides else base
    except SettingsError as err:
        raise RealtimeProtocolError(str(err), code="invalid_overrides") from None
    return SessionConfig(settings, caller_in, caller_out)
