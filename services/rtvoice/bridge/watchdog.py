"""Watchdogs of a bridge session: what the session waits for from the provider or a tool, with a deadline.

* **response** (``session.responseTimeoutMs``): armed when the session expects an answer (the caller's
  speech ended under server VAD, a manual turn end, a typed turn, a tool result returned) and kept alive
  by every sign of the response (``response_started``, audio, transcripts, tool calls). When it runs out,
  the provider either never answered or stopped answering mid-response.
* **tool** (``session.toolTimeoutMs``), per call id: armed at ``tool_call``, cleared by its result or
  cancellation; it covers a tool that never returns.

An expiry calls the session's handler once (typed non-fatal error, error span, the response cancelled or
the tool answered with an error); the session goes on. Keeping a deadline alive costs one float store
(no timer is rescheduled per audio frame): the timer re-arms itself for the remaining time when it fires
early.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

#: the key of the response deadline (tool deadlines are keyed by call id)
RESPONSE = "\0response"

Expired = Callable[[str], Coroutine[Any, Any, None]]


class Deadlines:
    """Named deadlines with keep-alive. ``on_expired(key)`` runs as a task when one runs out."""

    def __init__(self, on_expired: Expired) -> None:
        self._on_expired = on_expired
        self._last: dict[str, float] = {}
        self._timeout: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.get_running_loop()

    def arm(self, key: str, timeout_s: float) -> None:
        """Start (or restart) ``key``'s deadline ``timeout_s`` from now."""
        self._last[key] = self._loop.time()
        self._timeout[key] = timeout_s
        if key not in self._timers:
            self._timers[key] = self._loop.call_later(timeout_s, self._check, key)

    def alive(self, key: str) -> None:
        """``key`` made progress: its deadline counts from now (no-op when not armed)."""
        if key in self._last:
            self._last[key] = self._loop.time()

    def armed(self, key: str) -> bool:
        return key in self._last

    def clear(self, key: str) -> None:
        self._last.pop(key, None)
        self._timeout.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        """Cancel every deadline and running handler."""
        for key in list(self._timers):
            self.clear(key)
        for task in self._tasks:
            task.cancel()

    def _check(self, key: str) -> None:
        self._timers.pop(key, None)
        last = self._last.get(key)
        if last is None:
            return
        left = last + self._timeout[key] - self._loop.time()
        if left > 0:
            self._timers[key] = self._loop.call_later(left, self._check, key)
            return
        self.clear(key)
        task = self._loop.create_task(self._on_expired(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
