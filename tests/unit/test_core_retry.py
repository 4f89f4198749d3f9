"""rtvoice.core.retry.Backoff: growth, cap, jitter bounds, deadline, attempt limit, reset, stop event."""

from __future__ import annotations

import threading
import time

import pytest

from rtvoice.core.retry import Backoff


def test_delays_grow_by_the_factor_and_stop_at_the_cap() -> None:
    policy = Backoff(initial_s=0.1, max_s=1.0, factor=2.0, jitter=0)
    assert [policy.delay_s(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.delay_s(10_000) == 1.0  # no overflow for long outages


def test_jitter_stays_within_its_fraction_and_under_the_cap() -> None:
    policy = Backoff(initial_s=1.0, max_s=1.1, jitter=0.2)
    delays = [policy.delay_s(0) for _ in range(500)]
    assert min(delays) >= 0.8 and max(delays) <= 1.1 and len(set(delays)) > 100


def test_attempt_limit_deadline_and_reset() -> None:
    run = Backoff(initial_s=0.01, max_s=0.01, jitter=0, max_attempts=3).start()
    assert [run.next_delay_s() for _ in range(4)] == [0.01, 0.01, 0.01, None]
    run.reset()
    assert run.attempts == 0 and run.next_delay_s() == 0.01
    timed = Backoff(initial_s=10.0, max_s=10.0, jitter=0, deadline_s=0.05).start()
    first = timed.next_delay_s()
    assert first is not None and first <= 0.05  # cut to the time left
    timed.started_s -= 1.0
    assert timed.next_delay_s() is None


async def test_async_sleep_and_thread_wait() -> None:
    run = Backoff(initial_s=0.01, max_s=0.01, jitter=0, max_attempts=1).start()
    t0 = time.monotonic()
    assert await run.sleep() and time.monotonic() - t0 >= 0.009
    assert not await run.sleep()
    stop = threading.Event()
    stop.set()
    assert not Backoff(initial_s=5.0, max_s=5.0).start().wait(stop)  # returns at once when stopping


def test_bad_policies_are_refused() -> None:
    for kw in ({"initial_s": -1}, {"initial_s": 2, "max_s": 1}, {"factor": 0.5}, {"jitter": 1.0}):
        with pytest.raises(ValueError, match="bad backoff policy"):
            Backoff(**kw)
