"""Rules about agent settings that the CRD's structural schema cannot express.

The API server already enforces types, enums, bounds, patterns and required fields (the schema comes from
the same pydantic model). What is left are rules across fields or against a provider's catalogue; the
operator reports them as ``ConfigValid=False`` and leaves the agent's children untouched.
Provider facts come from ``shared/protocols.md`` (OpenAI Realtime GA, Gemini Live).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rtvoice.core.settings import AgentSettings
from rtvoice_operator.render import child_name

OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
OPENAI_BETA_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"})
GEMINI_VOICES = frozenset(
    {
        "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe", "Charon",
        "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore", "Laomedeia", "Leda",
        "Orus", "Puck", "Pulcherrima", "Rasalgethi", "Sadachbia", "Sadaltager", "Schedar", "Sulafat",
        "Umbriel", "Vindemiatrix", "Zephyr", "Zubenelgenubi",
    }
)  # fmt: skip
OPENAI_BETA_TEMPERATURE = (0.6, 1.2)

# Session-config paths the bridge derives from the spec; overriding them would fight the spec.
_OPENAI_OWNED = (
    "type", "model", "instructions", "tools", "voice", "temperature", "modalities", "output_modalities",
    "turn_detection", "input_audio_format", "output_audio_format", "audio.input.format",
    "audio.input.turn_detection", "audio.output.format", "audio.output.voice",
)  # fmt: skip
FORBIDDEN_OVERRIDES: dict[str, tuple[str, ...]] = {
    "openai": _OPENAI_OWNED,
    "local": _OPENAI_OWNED,  # the offline engine speaks the OpenAI Realtime GA protocol
    "gemini": (
        "model", "systemInstruction", "tools", "sessionResumption", "generationConfig.responseModalities",
        "generationConfig.speechConfig", "generationConfig.temperature",
        "realtimeInputConfig.automaticActivityDetection",
    ),
}  # fmt: skip

_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Problem:
    """One broken rule: ``reason`` is a CamelCase condition reason, ``message`` names the field."""

    reason: str
    message: str


def _touched(overrides: dict[str, Any], dotted: str) -> bool:
    node: Any = overrides
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _voice_problem(settings: AgentSettings) -> Problem | None:
    voice = settings.voice
    if not voice or settings.provider == "local":
        return None  # empty = provider default; the offline engine takes any espeak-ng voice name
    if settings.provider == "gemini":
        offered: frozenset[str] = GEMINI_VOICES
    elif settings.api_shape == "beta":
        offered = OPENAI_BETA_VOICES
    else:
        offered = OPENAI_VOICES
        if voice.startswith("voice_"):
            return None  # an OpenAI custom voice id
    if voice in offered:
        return None
    return Problem(
        "VoiceNotOffered",
        f"spec.voice {voice!r} is not a {settings.provider} voice (one of: {', '.join(sorted(offered))})",
    )


def _temperature_problem(settings: AgentSettings) -> Problem | None:
    t = settings.temperature
    if t is None or settings.provider != "openai":
        return None
    if settings.api_shape == "ga":
        return Problem(
            "UnsupportedTemperature",
            "spec.temperature is not supported by the OpenAI Realtime GA API (remove it, or apiShape: beta)",
        )
    lo, hi = OPENAI_BETA_TEMPERATURE
    if not lo <= t <= hi:
        return Problem("UnsupportedTemperature", f"spec.temperature {t} is outside OpenAI's {lo}-{hi}")
    return None


def semantic_problems(agent_name: str, settings: AgentSettings) -> list[Problem]:
    """Every cross-field or provider rule ``settings`` breaks (empty list = valid). Pure; never raises."""
    problems: list[Problem] = []
    bridge = child_name(agent_name)
    if len(bridge) > 63 or not _DNS_1035_LABEL.match(bridge):
        problems.append(
            Problem(
                "InvalidAgentName",
                f"the bridge Service name {bridge!r} must be a DNS-1035 label of at most 63 characters: "
                "use lowercase letters, digits and '-' and at most 48 characters for the agent name",
            )
        )
    for check in (_voice_problem, _temperature_problem):
        found = check(settings)
        if found:
            problems.append(found)
    if settings.provider == "gemini" and settings.turn_detection.type == "semantic_vad":
        problems.append(
            Problem(
                "UnsupportedTurnDetection",
                "spec.turnDetection.type semantic_vad is OpenAI-only; use server_vad or none with gemini",
            )
        )
    dupes = sorted(name for name, n in Counter(t.name for t in settings.tools).items() if n > 1)
    if dupes:
        problems.append(Problem("DuplicateToolName", f"spec.tools has duplicate names: {', '.join(dupes)}"))
    touched = [
        p for p in FORBIDDEN_OVERRIDES[settings.provider] if _touched(settings.provider_param_overrides, p)
    ]
    if touched:
        problems.append(
            Problem(
                "ForbiddenOverride",
                f"spec.providerParamOverrides may not set {', '.join(touched)}: "
                "these come from the spec's own fields",
            )
        )
    if (
        settings.provider in ("openai", "gemini")
        and settings.credentials.secret_ref is None
        and not settings.base_url
    ):
        problems.append(
            Problem(
                "MissingCredentials",
                f"provider {settings.provider} needs spec.credentials.secretRef: a Secret with the API key",
            )
        )
    return problems
