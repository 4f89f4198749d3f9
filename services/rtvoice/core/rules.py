"""Rules across agent-settings fields and against the provider catalog (:mod:`rtvoice.core.catalog`).

The schema (types, enums, bounds, patterns) cannot say "this voice is not a Gemini voice" or "these two
tools share a name"; these rules can. :class:`rtvoice.core.settings.AgentSettings` runs them when it is
validated, the operator reports them as ``ConfigValid=False`` conditions (reason = :attr:`reason`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rtvoice.core.catalog import provider

if TYPE_CHECKING:
    from rtvoice.core.settings import AgentSettings


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One broken rule. ``reason``: a CamelCase condition reason (``VoiceNotOffered`` …); ``path``: the
    camelCase field path under ``spec`` (``voice``, ``turnDetection.type``); ``detail``: what is wrong."""

    reason: str
    path: str
    detail: str

    @property
    def message(self) -> str:
        """``spec.<path>: <detail>``."""
        return f"spec.{self.path}: {self.detail}"


def touches(overrides: dict[str, Any], dotted: str) -> bool:
    """True when the nested mapping ``overrides`` sets the dotted path ``dotted`` (or something under it)."""
    node: Any = overrides
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _voice(settings: AgentSettings) -> SettingsProblem | None:
    if not settings.voice:
        return None  # empty = the provider's default voice
    voices = provider(settings.provider).profile(settings.api_shape).voices
    if voices.offers(settings.voice):
        return None
    return SettingsProblem(
        "VoiceNotOffered",
        "voice",
        f"{settings.voice!r} is not a {settings.provider} voice ({voices.describe()})",
    )


def _temperature(settings: AgentSettings) -> SettingsProblem | None:
    t = settings.temperature
    if t is None:
        return None
    accepted = provider(settings.provider).profile(settings.api_shape).temperature
    if accepted is None:
        hint = " (remove it, or apiShape: beta)" if settings.provider == "openai" else " (remove it)"
        shape = " GA" if settings.provider == "openai" else ""
        return SettingsProblem(
            "UnsupportedTemperature", "temperature", f"is not supported by {settings.provider}{shape}{hint}"
        )
    lo, hi = accepted
    if lo <= t <= hi:
        return None
    return SettingsProblem(
        "UnsupportedTemperature", "temperature", f"{t} is outside {settings.provider}'s {lo}-{hi}"
    )


def _turn_detection(settings: AgentSettings) -> SettingsProblem | None:
    kind = settings.turn_detection.type
    offered = provider(settings.provider).profile(settings.api_shape).turn_detection
    if kind in offered:
        return None
    return SettingsProblem(
        "UnsupportedTurnDetection",
        "turnDetection.type",
        f"{kind} is not offered by {settings.provider}; use {' or '.join(sorted(offered))}",
    )


def _tools(settings: AgentSettings) -> SettingsProblem | None:
    dupes = sorted(name for name, n in Counter(t.name for t in settings.tools).items() if n > 1)
    if not dupes:
        return None
    return SettingsProblem("DuplicateToolName", "tools", f"has duplicate names: {', '.join(dupes)}")


def _overrides(settings: AgentSettings) -> SettingsProblem | None:
    owned = provider(settings.provider).owned_override_paths
    touched = [p for p in owned if touches(settings.provider_param_overrides, p)]
    if not touched:
        return None
    return SettingsProblem(
        "ForbiddenOverride",
        "providerParamOverrides",
        f"may not set {', '.join(touched)}: these come from the spec's own fields",
    )


_RULES = (_voice, _temperature, _turn_detection, _tools, _overrides)
#: The ``reason`` of every rule (also the pydantic error type when ``AgentSettings`` validation fails).
RULE_REASONS = frozenset(
    {
        "VoiceNotOffered",
        "UnsupportedTemperature",
        "UnsupportedTurnDetection",
        "DuplicateToolName",
        "ForbiddenOverride",
    }
)


def settings_problems(settings: AgentSettings) -> list[SettingsProblem]:
    """Every provider or cross-field rule ``settings`` breaks, in a fixed order (empty = valid).

    Pure; never raises. The rules: voice offered by the provider (``VoiceNotOffered``), temperature
    accepted and in range (``UnsupportedTemperature``), turn detection offered
    (``UnsupportedTurnDetection``), unique tool names (``DuplicateToolName``) and no override of a path
    the spec owns (``ForbiddenOverride``).
    """
    return [p for p in (rule(settings) for rule in _RULES) if p is not None]
