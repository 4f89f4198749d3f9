"""The reconnecting connection core shared by every provider package.

A :class:`ProviderLink` is one logical conversation over one or more provider connections. It owns:

* **open and read**: :meth:`ProviderLink.start` opens the first connection (its errors are raised to the
  caller of ``connect``); one supervisor task reads the live connection, hands every message to the
  :class:`~rtvoice.bridge.providers.wire.Wire`'s translator and queues the resulting frames on an
  :class:`~rtvoice.bridge.providers.stream.EventStream` (which puts speech times on the session clock);
  ``LinkedProvider.events`` reads them.
* **switch**: a lost connection (close the wire does not call fatal) or a planned switch (recycle at
  ``max_age_s``, provider ``goAway``, a change that needs a new session) closes the old socket first,
  then opens a replacement under the adapter's ``rtvoice.core.retry.Backoff`` (first attempt at once;
  ``session.reconnectAttempts`` attempts for a loss, at least one for a planned switch). A planned
  switch waits until the wire is quiet, or until its deadline. A replacement after a loss (or a switch
  forced by its deadline) is sent the utterance in progress again (see ``outlet``).
* **backlog and replay** (:class:`~rtvoice.bridge.providers.outlet.Outlet`): what the session sends
  meanwhile waits in order; the utterance in progress is sent again to the new connection.
* **deferred steering**: :meth:`ProviderLink.defer_steer` merges changes that must wait for the turn to
  end; they are applied (``Wire.apply_steer``) at the next turn end when nothing is in flight.

Fatal errors come out of the stream as ``error`` (``fatal=True``) then ``end``; the iterator ends there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from websockets.exceptions import ConnectionClosed

from rtvoice.bridge.steering import SteerPlan
from rtvoice.core.audio import AudioFormat
from rtvoice.core.errors import RealtimeError, RealtimeProtocolError, RealtimeProviderError
from rtvoice.core.retry import Backoff
from rtvoice.v1 import frames_pb2 as pb

from .base import RealtimeProvider
from .outlet import LinkStats, Outlet
from .stream import EventStream
from .wire import Step, Wire

log = logging.getLogger(__name__)

#: A ``goAway`` switch happens at the latest this long before the provider's deadline (or at half the
#: time left, when that is shorter).
GO_AWAY_MARGIN_MS = 5000
#: How long :meth:`ProviderLink.close` waits for the supervisor before abandoning a connect in progress.
CLOSE_WAIT_S = 2.0


class ProviderLink:
    """One conversation's connections. ``label`` names the provider in logs; ``attempts`` is
    ``session.reconnectAttempts``; ``max_age_s`` (None = no limit) recycles a connection at a quiet
    moment once it is that old; ``backoff`` is the delay policy between attempts."""

    def __init__(
        self,
        wire: Wire,
        *,
        label: str,
        input_format: AudioFormat,
        backlog_ms: int,
        attempts: int,
        backoff: Backoff,
        max_age_s: float | None = None,
    ) -> None:
        self.wire = wire
        self.label = label
        self.stats = LinkStats()
        self.outlet = Outlet(
            input_format, wire.encode_audio, lambda err: self.stream.report(err), backlog_ms, self.stats
        )
        self._attempts = attempts
        self._backoff = backoff
        #: recycle a connection at a quiet moment once it is this old (s; None = never); read when a
        #: connection goes live
        self.max_age_s = max_age_s
        self.stream = EventStream(self.outlet.timeline, wire.speech_times, self.outlet.boundary)
        self._steer = SteerPlan()
        self._switch_why: str | None = None
        self._forced = False
        self._timers: list[asyncio.TimerHandle] = []
        self._out_of_service_at = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    @property
    def ended(self) -> bool:
        return self.stream.ended

    # -- the session's side ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the first connection (typed errors raised) and start reading it."""
        ws = await self.wire.open(False, self._on_message)
        self.stats.connections += 1
        await self.outlet.go_live(ws, [], replay=False)
        self._arm_recycle()
        self._supervisor = asyncio.create_task(self._run(), name=f"{self.label}-provider")

    async def defer_steer(self, plan: SteerPlan) -> None:
        """Changes that wait for the turn to end (merged with earlier ones); applied now when idle."""
        self._steer = self._steer.merged(plan)
        if not self.wire.busy:
            await self._turn_end()

    def plan_switch(self, why: str, deadline_s: float | None = None) -> None:
        """Move to a new connection at the next quiet moment (at the latest after ``deadline_s``)."""
        if self.closing or self.ended or self._supervisor is None:
            return  # not connected yet: the first connection gets the current settings anyway
        self._switch_why = self._switch_why or why
        if deadline_s is not None:
            self._timers.append(asyncio.get_running_loop().call_later(deadline_s, self._switch, True))
        self._switch()

    async def close(self) -> None:
        """Close the conversation; idempotent. ``events`` ends with ``end`` (provider closed)."""
        if self.closing:
            return
        self.closing = True
        self._cancel_timers()
        ws = self.outlet.out_of_service()
        if ws is not None:
            await ws.close()
        sup = self._supervisor
        if sup is not None and sup is not asyncio.current_task():
            _, pending = await asyncio.wait({sup}, timeout=CLOSE_WAIT_S)
            for task in pending:  # still opening a new connection: abandon it
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.stream.end(pb.END_REASON_PROVIDER_CLOSED)

    def fail(self, err: RealtimeError) -> None:
        """End the conversation with ``err`` (made fatal): ``error`` then ``end``; the socket is closed."""
        err.fatal = True
        log.warning("%s conversation ends: %r", self.label, err)
        self.stream.emit(pb.ServerFrame(error=err.to_frame()))
        self.stream.end(pb.END_REASON_PROVIDER_ERROR)
        self.closing = True
        self._cancel_timers()
        ws = self.outlet.out_of_service()
        if ws is not None:
            task = asyncio.create_task(ws.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- reading ---------------------------------------------------------------------------------------

    def _on_message(self, raw: str | bytes) -> Step:
        """Translate one server message and queue its frames (speech times on the session clock)."""
        try:
            step = self.wire.translate(raw)
        except RealtimeError as err:
            self.stream.report(err)
            return Step()
        except (KeyError, TypeError, ValueError) as err:  # a malformed event: report, keep going
            self.stream.report(
                RealtimeProtocolError(
                    f"malformed {self.label} message: {type(err).__name__}: {err}", code="bad_event"
                )
            )
            return Step()
        self.stream.publish(step.frames)
        if step.error is not None:
            if step.error.fatal:
                self.fail(step.error)
            else:
                self.stream.report(step.error)
        if step.go_away_ms is not None:
            left = step.go_away_ms
            log.info("%s goAway: %d ms left on this connection", self.label, left)
            self.plan_switch("go_away", max(0, left - min(GO_AWAY_MARGIN_MS, left // 2)) / 1000)
        return step

    async def _run(self) -> None:
        """Read the live connection; when it ends switch (planned or not) or end the conversation."""
        try:
            while (ws := self.outlet.ws) is not None:
                with contextlib.suppress(ConnectionClosed):
                    async for raw in ws:
                        step = self._on_message(raw)
                        if step.turn_complete:
                            await self._turn_end()
                        elif self._switch_why is not None:
                            self._switch()
                if self.closing or self.ended:
                    return
                rcvd = ws.protocol.close_rcvd
                code, reason = (rcvd.code, rcvd.reason) if rcvd else (None, "")
                why, forced = self._switch_why, self._forced
                frames, fatal = self.wire.lost(why is not None, code, reason)
                for frame in frames:
                    self.stream.emit(frame)
                if why is None:
                    if fatal is not None:
                        self.fail(fatal)
                        return
                    log.warning("%s connection lost (%s %s); reconnecting", self.label, code, reason)
                    self.outlet.out_of_service()
                    self._out_of_service_at = time.monotonic()
                # the utterance in progress is replayed unless the switch waited for a quiet moment
                replay = why is None or forced
                if not await self._reconnect(
                    why or "connection_lost", planned=why is not None, replay=replay
                ):
                    return
        except Exception as err:  # a bug must end the conversation visibly, never hang it
            log.exception("%s provider failed", self.label)
            self.fail(RealtimeProviderError(f"{self.label} adapter failed: {err!r}", code="adapter_error"))

    async def _reconnect(self, why: str, *, planned: bool, replay: bool) -> bool:
        attempts = max(1, self._attempts) if planned else self._attempts
        run = self._backoff.start()
        last: RealtimeError | None = None
        for attempt in range(attempts):
            if attempt and not await run.sleep():
                break
            if self.closing:
                return False
            try:
                ws = await self.wire.open(True, self._on_message)
            except RealtimeError as err:
                last = err
                log.warning("%s %s attempt %d failed: %s", self.label, why, attempt + 1, err.message)
                if not err.retryable:
                    break
                continue
            self.stats.connections += 1
            try:
                await self.outlet.go_live(ws, self.wire.preamble(), replay=replay)
            except ConnectionClosed:
                continue
            self._switch_why, self._forced = None, False
            self._cancel_timers()
            self._arm_recycle()
            gap_ms = (time.monotonic() - self._out_of_service_at) * 1000
            self.stats.reconnect_gaps_ms.append(gap_ms)
            self.stats.reconnect_reasons.append(why)
            log.info("%s connection replaced (%s) in %.0f ms", self.label, why, gap_ms)
            await self._turn_end()  # what waited for the switch (steering, tool outputs, text turns)
            return True
        self.fail(
            last
            or RealtimeProviderError(
                f"{self.label} connection lost ({why}) and reconnecting is disabled or failed",
                code="reconnect_failed",
            )
        )
        return False

    # -- turn ends and planned switches ----------------------------------------------------------------

    async def _turn_end(self) -> None:
        if self.wire.busy:
            return
        if self._steer:
            plan, self._steer = self._steer, SteerPlan()
            await self.wire.apply_steer(plan)
        await self.wire.idle()
        if self._switch_why is not None:
            self._switch()

    def _switch(self, force: bool = False) -> None:
        """Take the live socket out of service and close it when a switch is planned and the wire is quiet
        (or ``force``: the deadline passed); the supervisor then opens the replacement."""
        if self._switch_why is None or self.closing or self.ended or self.outlet.ws is None:
            return
        if not (force or self.wire.quiet):
            return
        self._cancel_timers()
        self._forced = force and not self.wire.quiet
        self._out_of_service_at = time.monotonic()
        ws = self.outlet.out_of_service()
        if ws is not None:
            task = asyncio.create_task(ws.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _arm_recycle(self) -> None:
        if self.max_age_s is not None and not self.closing:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(self.max_age_s, self.plan_switch, "recycle"))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()


class LinkedProvider(RealtimeProvider):
    """A ``RealtimeProvider`` whose connections a :class:`ProviderLink` owns: connect, events, close and
    caller audio are the link's; subclasses add their wire's requests (turns, barge-in, steering)."""

    link: ProviderLink

    def _link(self, wire: Wire, label: str, backoff: Backoff, max_age_s: float | None = None) -> ProviderLink:
        """The link of ``wire`` under ``self.settings.session`` (reconnect attempts and buffer)."""
        s = self.settings.session
        self.link = ProviderLink(
            wire,
            label=label,
            input_format=self.input_format,
            backlog_ms=s.reconnect_buffer_ms,
            attempts=s.reconnect_attempts,
            backoff=backoff,
            max_age_s=max_age_s,
        )
        return self.link

    async def connect(self) -> None:
        await self.link.start()

    def events(self) -> AsyncIterator[pb.ServerFrame]:
        return self.link.stream.events()

    async def close(self) -> None:
        await self.link.close()

    async def send_audio(self, data: bytes) -> None:
        await self.link.outlet.send_audio(data)
