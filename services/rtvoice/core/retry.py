"""One retry policy for every reconnect and re-send loop: exponential backoff with jitter and a deadline.

A :class:`Backoff` is an immutable policy (share it as a module constant); :meth:`Backoff.start` gives a
:class:`BackoffRun`, the state of one series of attempts. Typical use::

    run = UPLOAD_BACKOFF.start()
    while True:
        try:
            return put()
        except StoreError:
            if not await run.sleep():      # False: the deadline or attempt limit is reached
                raise

In a worker thread, ``run.wait(stop_event)`` sleeps the same delay but returns False at once when
``stop_event`` is set. Call :meth:`BackoffRun.reset` after a success so the next failure starts small.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``n`` (0-based) = ``min(max_s, initial_s · factor**n)`` · U(1 − jitter, 1 + jitter).

    ``jitter`` is a fraction (0.2 = ±20 %; 0 = exact delays); the jittered delay never exceeds ``max_s``.
    ``deadline_s`` bounds the time from :meth:`start` (the first failure) until giving up; ``max_attempts``
    bounds the retries. None means no bound. Raises ``ValueError`` for a negative or inconsistent policy.
    """

    initial_s: float = 0.1
    max_s: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2
    deadline_s: float | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(
                f"bad backoff policy: initial_s={self.initial_s} max_s={self.max_s} "
                f"factor={self.factor} jitter={self.jitter} (need 0 <= initial <= max, factor >= 1, "
                "0 <= jitter < 1)"
            )

    def delay_s(self, attempt: int) -> float:
        """The delay (s) before retry number ``attempt`` (0-based), jitter applied."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        if self.jitter:
            base *= random.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return min(base, self.max_s)

    def start(self) -> BackoffRun:
        """A fresh series of attempts under this policy (its deadline counts from now)."""
        return BackoffRun(self)


@dataclass(slots=True)
class BackoffRun:
    """The state of one series of retries: how many so far and when the series began (monotonic s)."""

    policy: Backoff
    attempts: int = 0
    started_s: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the series began (or was last reset)."""
        return time.monotonic() - self.started_s

    def next_delay_s(self) -> float | None:
        """Count one retry and return its delay (s), cut to the time left; None when the policy gives up."""
        p = self.policy
        if p.max_attempts is not None and self.attempts >= p.max_attempts:
            return None
        delay = p.delay_s(self.attempts)
        if p.deadline_s is not None:
            left = p.deadline_s - self.elapsed_s
            if left <= 0:
                return None
            delay = min(delay, left)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure starts again at ``initial_s`` with a fresh deadline."""
        self.attempts = 0
        self.started_s = time.monotonic()

    async def sleep(self) -> bool:
        """Sleep the next delay; False (without sleeping) when the policy gives up."""
        delay = self.next_delay_s()
        if delay is None:
            return False
        await asyncio.sleep(delay)
        return True

    def wait(self, stop: threading.Event) -> bool:
        """Blocking :meth:`sleep` for worker threads; False when the policy gives up or ``stop`` is set."""
        delay = self.next_delay_s()
        if delay is None:
            return False
        return not stop.wait(delay)
