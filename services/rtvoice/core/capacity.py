"""Admission control shared by the ingress and the bridge: refuse new sessions before live ones degrade.

A service is *full* when it holds ``max_sessions`` sessions (0 = no limit) or when its event loop lags
(:class:`LoopLagMonitor`: a 100 ms timer measures how late the loop runs it; the median of the last second
above ``max_loop_lag_ms`` means the process has no CPU left for more calls). A full service refuses a
new session with :class:`CapacityFullError` (``ErrorFrame`` kind ``UNAVAILABLE``, code ``full``,
retryable, ``retry_after_ms``); live sessions are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import deque
from collections.abc import Callable

from rtvoice.core.errors import RealtimeUnavailableError
from rtvoice.v1 import frames_pb2 as pb

FULL_CODE = "full"
DRAINING_CODE = "draining"
#: What a refused caller is told to wait before trying again, ms.
DEFAULT_RETRY_AFTER_MS = 2000
DEFAULT_MAX_LOOP_LAG_MS = 150.0
LAG_INTERVAL_S = 0.1
LAG_WINDOW = 10


class CapacityFullError(RealtimeUnavailableError):
    """The service (or every bridge of an agent) cannot take another session now; retry after
    ``retry_after_ms``. Code ``full``, retryable, fatal for the refused session only."""

    default_code = FULL_CODE

    def __init__(self, message: str, *, retry_after_ms: int = DEFAULT_RETRY_AFTER_MS) -> None:
        super().__init__(message, code=FULL_CODE, retryable=True, fatal=True)
        self.retry_after_ms = retry_after_ms

    def to_frame(self) -> pb.ErrorFrame:
        frame = super().to_frame()
        frame.retry_after_ms = self.retry_after_ms
        return frame


def retry_after_header(retry_after_ms: int) -> str:
    """The HTTP ``Retry-After`` value (whole seconds, at least 1) for ``retry_after_ms``."""
    return str(max(1, -(-retry_after_ms // 1000)))


class LoopLagMonitor:
    """Measures event-loop lag: how late a ``LAG_INTERVAL_S`` timer fires, in ms.

    :attr:`lag_ms` is the median of the last ``LAG_WINDOW`` samples (one second), so one slow callback
    or GC pause does not count, a loop that is behind all the time does. ``on_sample(lag_ms)`` is called
    after each sample. :meth:`start` needs a running loop; :meth:`stop` ends the timer task.
    """

    def __init__(self, on_sample: Callable[[float], None] | None = None) -> None:
        self.on_sample = on_sample
        self._samples: deque[float] = deque(maxlen=LAG_WINDOW)
        self._task: asyncio.Task[None] | None = None

    @property
    def lag_ms(self) -> float:
        return statistics.median(self._samples) if self._samples else 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + LAG_INTERVAL_S
            await asyncio.sleep(LAG_INTERVAL_S)
            self._samples.append(max(0.0, (loop.time() - expected) * 1000.0))
            if self.on_sample is not None:
                self.on_sample(self.lag_ms)


class CapacityGate:
    """Counts admitted sessions and says when the service is full.

    ``max_sessions`` 0 = unlimited; ``max_loop_lag_ms`` 0 = ignore loop lag. :meth:`refusal` is the
    error for a new session now (``None`` = admit); :meth:`admit` / :meth:`release` count sessions from
    the moment they are admitted (so a burst of simultaneous starts cannot overshoot the limit).
    ``on_change(full)`` is called whenever :attr:`full` flips (e.g. to flip the health status);
    ``on_lag(lag_ms)`` after each loop-lag sample (metrics). Start the lag timer with ``gate.lag.start()``.
    """

    def __init__(
        self,
        max_sessions: int = 0,
        max_loop_lag_ms: float = DEFAULT_MAX_LOOP_LAG_MS,
        retry_after_ms: int = DEFAULT_RETRY_AFTER_MS,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if max_sessions < 0 or max_loop_lag_ms < 0 or retry_after_ms <= 0:
            raise ValueError("max_sessions and max_loop_lag_ms must be >= 0, retry_after_ms > 0")
        self.max_sessions = max_sessions
        self.max_loop_lag_ms = max_loop_lag_ms
        self.retry_after_ms = retry_after_ms
        self.on_change = on_change
        self.on_lag: Callable[[float], None] | None = None
        self.active = 0
        self.refused = 0
        self.lag = LoopLagMonitor(self._lag_sampled)
        self._full = False

    @property
    def lagging(self) -> bool:
        return self.max_loop_lag_ms > 0 and self.lag.lag_ms > self.max_loop_lag_ms

    @property
    def at_limit(self) -> bool:
        return self.max_sessions > 0 and self.active >= self.max_sessions

    @property
    def full(self) -> bool:
        return self.at_limit or self.lagging

    def refusal(self) -> CapacityFullError | None:
        """The typed refusal for a new session now, or ``None`` when it may be admitted."""
        if self.at_limit:
            why = f"it holds {self.active} of {self.max_sessions} sessions"
        elif self.lagging:
            why = f"its event loop lags {self.lag.lag_ms:.0f} ms (limit {self.max_loop_lag_ms:g} ms)"
        else:
            return None
        self.refused += 1
        return CapacityFullError(
            f"the service is at capacity ({why}); retry in {self.retry_after_ms} ms",
            retry_after_ms=self.retry_after_ms,
        )

    def admit(self) -> None:
        self.active += 1
        self._check()

    def release(self) -> None:
        self.active = max(0, self.active - 1)
        self._check()

    def _lag_sampled(self, lag_ms: float) -> None:
        if self.on_lag is not None:
            self.on_lag(lag_ms)
        self._check()

    def _check(self) -> None:
        full = self.full
        if full != self._full:
            self._full = full
            if self.on_change is not None:
                self.on_change(full)
