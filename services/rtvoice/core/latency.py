"""First-audio latency: the one definition every service reports.

**First-audio latency** of a response is the time, in ms, from the end of the user's speech that the
response answers to the first sample of the agent's answer being played to the caller, both read on one
clock. Services read it on the *session clock* (ms since the session started; the recorder's events,
the bridge and the ingress all timestamp on it): ``user_speech_end_ms`` is where the user's speech
ended (the VAD ``speech_stopped`` position mapped to session time, or the moment a typed turn / explicit
``turn.end`` arrived), ``first_agent_audio_ms`` is where the first agent sample of the response starts
playing (the recorder's playback position; at the ingress and in ``rtvoice call`` the moment the first
agent audio of the response reaches the caller, who plays audio as it arrives).

The caller (``rtvoice call``) has no session clock, only its own monotonic clock in seconds; it uses
:func:`first_audio_latency_from_monotonic` with the same definition.
"""

from __future__ import annotations

import math


class LatencyClockError(ValueError):
    """The two instants cannot give a latency: one is not a finite number, or the first agent sample
    is placed before the end of the user's speech (the two instants were read on different clocks)."""


def first_audio_latency_ms(user_speech_end_ms: float, first_agent_audio_ms: float) -> float:
    """First-audio latency in ms: ``first_agent_audio_ms - user_speech_end_ms``.

    Both arguments are ms on the session clock (see the module docstring for which instants).
    Raises :class:`LatencyClockError` when either is NaN/infinite or the result would be negative.
    """
    if not (math.isfinite(user_speech_end_ms) and math.isfinite(first_agent_audio_ms)):
        raise LatencyClockError(
            f"latency needs finite instants, got speech end {user_speech_end_ms!r} ms, "
            f"first agent audio {first_agent_audio_ms!r} ms"
        )
    latency = first_agent_audio_ms - user_speech_end_ms
    if latency < 0:
        raise LatencyClockError(
            f"first agent audio at {first_agent_audio_ms:.1f} ms precedes the end of the user's speech "
            f"at {user_speech_end_ms:.1f} ms: the instants come from different clocks"
        )
    return latency


def first_audio_latency_from_monotonic(user_speech_end_s: float, first_agent_audio_s: float) -> float:
    """First-audio latency in ms from two ``time.monotonic()`` readings in seconds (same definition as
    :func:`first_audio_latency_ms`; the caller's own clock stands in for the session clock).
    Raises :class:`LatencyClockError` like :func:`first_audio_latency_ms`."""
    return first_audio_latency_ms(user_speech_end_s * 1000.0, first_agent_audio_s * 1000.0)
