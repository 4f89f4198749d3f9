"""The session's ledger of responses: which one runs, where the caller's turn it answers ended, its
first-audio latency, and the response and tool watchdogs (:mod:`rtvoice.bridge.watchdog`).

First-audio latency is :func:`rtvoice.core.latency.first_audio_latency_ms` on the session clock: from
the end of the caller's turn (the provider's speech end mapped to session time, a typed turn, a manual
turn end, or a tool output handed back) to the playback start of the response's first agent sample
(:meth:`rtvoice.bridge.barge_in.BargeIn.play_start_ms`).
"""

from __future__ import annotations

import contextlib

from rtvoice.bridge.barge_in import BargeIn
from rtvoice.bridge.telemetry import SessionSpans
from rtvoice.bridge.watchdog import RESPONSE, Deadlines, Expired
from rtvoice.core.latency import LatencyClockError, first_audio_latency_ms
from rtvoice.core.settings import SessionLimits
from rtvoice.v1 import frames_pb2 as pb


class ResponseLedger:
    """Responses of one session. ``limits`` gives ``responseTimeoutMs`` / ``toolTimeoutMs``;
    ``on_expired(key)`` is called when a deadline runs out (:data:`RESPONSE` or a tool call id)."""

    def __init__(self, barge_in: BargeIn, spans: SessionSpans, limits: SessionLimits) -> None:
        self._barge = barge_in
        self._spans = spans
        self.response_timeout_s = limits.response_timeout_ms / 1000
        self.tool_timeout_s = limits.tool_timeout_ms / 1000
        #: the response running now (``response_started`` seen, ``response_done`` not yet)
        self.response_id: str | None = None
        self._first_item: str | None = None
        self._user_end_ms: float | None = None
        self._abandoned: set[str] = set()
        self._tool_names: dict[str, str] = {}
        self.deadlines: Deadlines | None = None

    def start(self, on_expired: Expired) -> None:
        """Start the watchdogs (needs the running loop)."""
        self.deadlines = Deadlines(on_expired)

    def close(self) -> None:
        if self.deadlines is not None:
            self.deadlines.close()

    def user_turn_ended(self, at_ms: float) -> None:
        """The caller's turn ended at session ``at_ms``: an answer is due within the response timeout."""
        self._user_end_ms = at_ms
        if self.deadlines is not None and self.response_id is None:
            self.deadlines.arm(RESPONSE, self.response_timeout_s)

    def caller_speaks(self) -> None:
        """The caller started speaking: no answer is due before the turn ends."""
        if self.deadlines is not None and self.response_id is None:
            self.deadlines.clear(RESPONSE)

    def started(self, response_id: str) -> None:
        self.response_id = response_id
        self._first_item = None
        self._spans.response_started(response_id)
        if self.deadlines is not None:
            self.deadlines.arm(RESPONSE, self.response_timeout_s)

    def progress(self, audio_item: str | None = None) -> None:
        """A sign of the response (``audio_item``: agent audio of that item reached the caller path)."""
        if self.deadlines is not None:
            self.deadlines.alive(RESPONSE)
        if audio_item is not None and self._first_item is None:
            self._first_item = audio_item

    def done(self, done: pb.ResponseDone) -> bool:
        """A response ended: its span with first-audio latency. False when the watchdog had already ended
        it (the caller must not get a second ``response_done``)."""
        if done.response_id in self._abandoned:
            self._abandoned.discard(done.response_id)
            return False
        if self.response_id == done.response_id:
            self.response_id = None
        if self.deadlines is not None:
            self.deadlines.clear(RESPONSE)
        first_audio_ms = None
        if self._first_item is not None and self._user_end_ms is not None:
            played_at = self._barge.play_start_ms(self._first_item)
            with contextlib.suppress(LatencyClockError):
                first_audio_ms = first_audio_latency_ms(
                    self._user_end_ms, self._barge.now_ms() if played_at is None else played_at
                )
        self._spans.response_done(done, first_audio_ms)
        return True

    def abandon(self) -> pb.ResponseDone | None:
        """The response watchdog ran out: the ``response_done`` that ends the running response for the
        caller (None when none had started); a later one from the provider is not passed on."""
        rid = self.response_id
        if rid is None:
            return None
        done = pb.ResponseDone(response_id=rid, status="cancelled", status_reason="response_timeout")
        self.done(done)
        self._abandoned.add(rid)
        return done

    def tool_started(self, call: pb.ToolCall) -> None:
        """The model waits for a tool now: the tool's deadline replaces the response's."""
        if self.deadlines is not None:
            self.deadlines.clear(RESPONSE)
            self.deadlines.arm(call.call_id, self.tool_timeout_s)
        self._tool_names[call.call_id] = call.name
        self._spans.tool_started(call.call_id)

    def tool_finished(self, call_id: str) -> str:
        """A call got its result or was cancelled; returns the tool's name (``""`` when unknown)."""
        if self.deadlines is not None:
            self.deadlines.clear(call_id)
        return self._tool_names.pop(call_id, "")
