"""Turns and per-turn latencies of a session, rebuilt from its ``events.jsonl`` (see session.py).

Times are ms on the session clock. A user turn spans provider VAD start → stop (mapped from the
provider's input-audio clock to session time) or is a typed ``TextInput``; an assistant turn spans the
first played sample of its item → the end of playback (or the barge-in that cut it).

Latency of a response that follows a user turn (``user_end_ms`` = end of the user's speech, or the
``TextInput`` time):

- ``first_audio_ms``: :func:`rtvoice.core.latency.first_audio_latency_ms` (``user_end_ms`` → the playback
  start of the response's first agent sample)
- ``turn_complete_ms``: ``ResponseDone`` − ``user_end_ms``
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rtvoice.core.latency import LatencyClockError, first_audio_latency_ms


@dataclass(slots=True)
class Turn:
    """One transcript turn (``transcript.json`` → ``turns[]``)."""

    role: str
    item_id: str
    start_ms: float
    end_ms: float | None = None
    text: str = ""
    final: bool = False
    response_id: str = ""
    interrupted: bool = False
    _deltas: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The turn as stored in ``transcript.json``: final text if any, else the joined deltas."""
        text = self.text if self.final else "".join(self._deltas)
        out: dict[str, Any] = {
            "role": self.role,
            "item_id": self.item_id,
            "text": text,
            "final": self.final,
            "start_ms": round(self.start_ms, 1),
            "end_ms": round(self.end_ms, 1) if self.end_ms is not None else None,
        }
        if self.role == "assistant":
            out["response_id"] = self.response_id
            out["interrupted"] = self.interrupted
        return out


@dataclass(slots=True)
class Latency:
    """Latency of one response (``manifest.json`` → ``latency[]``)."""

    response_id: str
    user_end_ms: float | None
    first_audio_ms: float | None = None
    turn_complete_ms: float | None = None
    status: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The latency entry as stored in ``manifest.json`` (ms rounded to 0.1)."""

        def r(v: float | None) -> float | None:
            return round(v, 1) if v is not None else None

        return {
            "response_id": self.response_id,
            "user_end_ms": r(self.user_end_ms),
            "first_audio_ms": r(self.first_audio_ms),
            "turn_complete_ms": r(self.turn_complete_ms),
            "status": self.status,
        }


class TurnBuilder:
    """Feed events in order (:meth:`feed`), then read :meth:`turns` and :attr:`latencies`."""

    def __init__(self) -> None:
        self._turns: dict[tuple[str, str], Turn] = {}
        self._order: list[Turn] = []
        self._user_end: float | None = None
        self._response: Latency | None = None
        self._responses: dict[str, Latency] = {}
        self.latencies: list[Latency] = []
        self._playing: list[Turn] = []
        self._audio_items: set[str] = set()
        self._text_turns = 0

    def _turn(self, role: str, item_id: str, t: float) -> Turn:
        key = (role, item_id)
        turn = self._turns.get(key)
        if turn is None:
            turn = Turn(role=role, item_id=item_id, start_ms=t)
            self._turns[key] = turn
            self._order.append(turn)
        return turn

    def feed(self, ev: dict[str, Any]) -> None:
        """Apply one event of ``events.jsonl`` (unknown types are ignored)."""
        t: float = ev["t_ms"]
        handler = getattr(self, "_on_" + ev["type"], None)
        if handler is not None:
            handler(ev, t)

    def _on_speech_started(self, ev: dict[str, Any], t: float) -> None:
        turn = self._turn("user", ev["item_id"], t)
        turn.start_ms = ev["at_ms"] if ev.get("at_ms") is not None else t

    def _on_speech_stopped(self, ev: dict[str, Any], t: float) -> None:
        end = ev["at_ms"] if ev.get("at_ms") is not None else t
        turn = self._turn("user", ev["item_id"], end)
        turn.end_ms = end
        self._user_end = end

    def _on_text_input(self, ev: dict[str, Any], t: float) -> None:
        self._text_turns += 1
        turn = self._turn("user", f"text-{self._text_turns}", t)
        turn.item_id = ""
        turn.text, turn.final, turn.end_ms = ev["text"], True, t
        self._user_end = t

    def _on_transcript(self, ev: dict[str, Any], t: float) -> None:
        role = ev["role"]
        turn = self._turn(role, ev["item_id"], t)
        if role == "assistant" and not turn.response_id and self._response is not None:
            turn.response_id = self._response.response_id
        if ev["final"]:
            turn.text, turn.final = ev["text"], True
        else:
            turn._deltas.append(ev["text"])
        if role == "user" and turn.end_ms is None and turn.start_ms == t:
            turn.end_ms = t

    def _on_response_started(self, ev: dict[str, Any], t: float) -> None:
        lat = Latency(response_id=ev["response_id"], user_end_ms=self._user_end)
        self._user_end = None
        self._response = lat
        self._responses[lat.response_id] = lat
        self.latencies.append(lat)

    def _on_agent_audio_start(self, ev: dict[str, Any], t: float) -> None:
        turn = self._turn("assistant", ev["item_id"], ev["start_ms"])
        turn.response_id = turn.response_id or ev.get("response_id", "")
        if ev["item_id"] not in self._audio_items:  # heard from its first sample, not its first text
            self._audio_items.add(ev["item_id"])
            turn.start_ms = ev["start_ms"]
            self._playing.append(turn)
        lat = self._responses.get(ev.get("response_id", ""))
        if ev.get("first_of_response") and lat is not None and lat.first_audio_ms is None:
            if lat.user_end_ms is not None:
                # No value when caller audio ran ahead of real time (speech end after the playback start).
                with contextlib.suppress(LatencyClockError):
                    lat.first_audio_ms = first_audio_latency_ms(lat.user_end_ms, ev["start_ms"])

    def _on_response_done(self, ev: dict[str, Any], t: float) -> None:
        lat = self._responses.get(ev["response_id"]) or self._response
        if lat is not None:
            lat.status = ev["status"]
            if lat.user_end_ms is not None:
                lat.turn_complete_ms = t - lat.user_end_ms
        for turn in self._order:
            if turn.role == "assistant" and turn.response_id == ev["response_id"] and turn.end_ms is None:
                turn.end_ms = max(turn.start_ms, ev["playback_end_ms"]) if turn in self._playing else t
        self._playing = [turn for turn in self._playing if turn.end_ms is None or turn.end_ms > t]
        self._response = None

    def _on_clear_audio(self, ev: dict[str, Any], t: float) -> None:
        if ev.get("dropped_ms", 0) <= 0:
            return
        for turn in self._playing:
            if turn.end_ms is None or turn.end_ms > t:
                turn.end_ms = max(turn.start_ms, t)
                turn.interrupted = True
        self._playing = [turn for turn in self._playing if turn.end_ms is None or turn.end_ms > t]

    def turns(self) -> list[dict[str, Any]]:
        """The turns ordered by start time."""
        return [t.to_dict() for t in sorted(self._order, key=lambda t: t.start_ms)]


def build_turns(events: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(turns, latencies) of a session from its events, in the shapes of transcript.json / manifest.json."""
    builder = TurnBuilder()
    for ev in events:
        builder.feed(ev)
    return builder.turns(), [lat.to_dict() for lat in builder.latencies]
