"""Steering: mid-session changes of voice, instructions, temperature and turn detection (``SteerFrame``).

Rules (docs/architecture.md, "Steering"): voice and instructions wait until the current response is done;
temperature and turn detection apply at once where the provider supports them. :func:`plan_steer` turns a
``SteerFrame`` into a validated :class:`SteerPlan`; adapters apply it in their own wire protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from pydantic import ValidationError

from rtvoice.core.catalog import VoiceSet
from rtvoice.core.errors import RealtimeError, RealtimeProtocolError, RealtimeUnsupportedError
from rtvoice.core.settings import TurnDetection
from rtvoice.v1 import frames_pb2 as pb


@dataclass(frozen=True, slots=True)
class SteerPlan:
    """The fields to change; ``None`` = unchanged."""

    voice: str | None = None
    instructions: str | None = None
    temperature: float | None = None
    turn_detection: TurnDetection | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def split(self) -> tuple[SteerPlan, SteerPlan]:
        """(apply at once: turn detection, temperature; after ``response.done``: voice, instructions)."""
        return (
            SteerPlan(temperature=self.temperature, turn_detection=self.turn_detection),
            SteerPlan(voice=self.voice, instructions=self.instructions),
        )

    def merged(self, later: SteerPlan) -> SteerPlan:
        """This plan with the set fields of ``later`` on top."""
        changes = {
            f.name: getattr(later, f.name) for f in fields(later) if getattr(later, f.name) is not None
        }
        return replace(self, **changes)


def turn_detection_from_proto(td: pb.TurnDetection) -> TurnDetection:
    """``TurnDetection`` frame → settings model (unset fields take the settings defaults).

    Raises ``RealtimeProtocolError`` (code ``invalid_turn_detection``) for an unknown type or a value out
    of range.
    """
    values: dict[str, object] = {"type": td.type or "server_vad"}
    if td.HasField("threshold"):
        values["threshold"] = td.threshold
    if td.HasField("prefix_padding_ms"):
        values["prefix_padding_ms"] = td.prefix_padding_ms
    if td.HasField("silence_duration_ms"):
        values["silence_duration_ms"] = td.silence_duration_ms
    if td.eagerness:
        values["eagerness"] = td.eagerness
    try:
        return TurnDetection.model_validate(values)
    except ValidationError as err:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise RealtimeProtocolError(
            f"invalid turn detection: {detail}", code="invalid_turn_detection"
        ) from None


def plan_steer(
    steer: pb.SteerFrame, *, temperature_supported: bool, voices: VoiceSet
) -> tuple[SteerPlan, RealtimeError | None]:
    """Validate ``steer``. Returns the plan of what can be applied and, separately, the non-fatal error
    for what cannot (``RealtimeUnsupportedError`` for temperature where the provider has none).

    ``voices`` are the voices the session's provider protocol offers (``rtvoice.core.catalog``), the same
    list the agent's ``spec.voice`` is checked against. Raises ``RealtimeProtocolError`` for an invalid
    value — code ``invalid_voice`` (empty, or not offered: nothing is sent to the provider and the voice
    stays), ``invalid_turn_detection``.
    """
    unsupported: RealtimeError | None = None
    temperature: float | None = None
    if steer.HasField("temperature"):
        if temperature_supported:
            temperature = float(steer.temperature)
        else:
            unsupported = RealtimeUnsupportedError(
                "this provider protocol has no temperature setting (OpenAI Realtime GA); change ignored",
                code="temperature_unsupported",
            )
    if steer.HasField("voice"):
        if not steer.voice.strip():
            raise RealtimeProtocolError("steer: voice must not be empty", code="invalid_voice")
        if not voices.offers(steer.voice):
            raise RealtimeProtocolError(
                f"steer: {steer.voice!r} is not a voice of this agent's provider ({voices.describe()})",
                code="invalid_voice",
            )
    plan = SteerPlan(
        voice=steer.voice if steer.HasField("voice") else None,
        instructions=steer.instructions if steer.HasField("instructions") else None,
        temperature=temperature,
        turn_detection=turn_detection_from_proto(steer.turn_detection)
        if steer.HasField("turn_detection")
        else None,
    )
    return plan, unsupported
