"""A per-process pool of recognition decoders, each owned by one worker thread; cancellation-safe.

A :class:`Slot` is one decoder (created lazily by the pool's factory, on the slot's own thread) plus the
single thread that is allowed to use it. :meth:`DecoderPool.acquire` waits at most ``wait_s`` for a free
slot and raises :class:`RecognizerBusyError` after that, so a session never waits forever.

Ownership rule that keeps the pool whole: a slot goes back to the pool from the *worker thread side*
(:meth:`DecoderPool.release_when_done` on the future of the slot's last job), never from the awaiting
coroutine. A session that is cancelled or gone while its decode runs therefore cannot leak the slot, and
a waiter cancelled while a slot was being handed to it gives that slot straight back.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_WAIT_S = 10.0
"""How long a finished utterance waits for a free decoder before the session gets a busy error."""


class RecognizerBusyError(Exception):
    """Every decoder stayed busy for longer than the bounded wait (becomes ``error`` ``recognizer_busy``)."""


class Slot(Generic[T]):
    """One decoder and the single thread that owns it; :meth:`submit` runs ``fn(decoder, *args)`` there."""

    def __init__(self, index: int, factory: Callable[[], T], name: str) -> None:
        self.index = index
        self._factory = factory
        self._decoder: T | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{name}-{index}")

    def decoder(self) -> T:
        """The decoder, created on first use (call only from this slot's thread)."""
        if self._decoder is None:
            self._decoder = self._factory()
        return self._decoder

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(decoder, *args)`` on the slot's thread; jobs run in submission order."""
        return self._executor.submit(lambda: fn(self.decoder(), *args))


class DecoderPool(Generic[T]):
    """Up to ``size`` slots made by ``factory`` (a decoder per slot); ``name`` prefixes thread names.

    Thread-safe: slots may be taken from any thread or event loop of the process.
    """

    def __init__(self, factory: Callable[[], T], size: int = 2, name: str = "asr") -> None:
        if size < 1:
            raise ValueError("a decoder pool needs at least one slot")
        self.size = size
        self._factory = factory
        self._name = name
        self._lock = threading.Lock()
        self._free: list[Slot[T]] = []
        self._created = 0
        self._waiters: collections.deque[concurrent.futures.Future[Slot[T]]] = collections.deque()

    @property
    def in_use(self) -> int:
        """Slots currently handed out (created minus free)."""
        with self._lock:
            return self._created - len(self._free)

    @property
    def waiting(self) -> int:
        """Acquirers currently waiting for a slot."""
        with self._lock:
            return sum(1 for w in self._waiters if not w.done())

    def try_acquire(self) -> Slot[T] | None:
        """A free slot now (creating one while under ``size``), or None when all are in use."""
        with self._lock:
            return self._take_locked()

    def _take_locked(self) -> Slot[T] | None:
        if self._free:
            return self._free.pop()
        if self._created < self.size:
            self._created += 1
            return Slot(self._created, self._factory, self._name)
        return None

    def _request(self) -> concurrent.futures.Future[Slot[T]]:
        fut: concurrent.futures.Future[Slot[T]] = concurrent.futures.Future()
        with self._lock:
            slot = self._take_locked()
            if slot is None:
                self._waiters.append(fut)
                return fut
        fut.set_result(slot)
        return fut

    def _abandon(self, fut: concurrent.futures.Future[Slot[T]]) -> None:
        with self._lock:
            if fut.cancel():
                return
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            self.release(fut.result())  # handed over just as the waiter gave up: give it back

    async def acquire(self, wait_s: float = DEFAULT_WAIT_S) -> Slot[T]:
        """A slot, waiting up to ``wait_s`` s. Raises :class:`RecognizerBusyError` after that.

        Cancelling the caller while it waits leaves the pool whole (the waiter is withdrawn, or a slot
        handed to it at that instant is released).
        """
        fut = self._request()
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), wait_s)
        except TimeoutError as exc:
            self._abandon(fut)
            raise RecognizerBusyError(f"all {self.size} speech decoders busy for {wait_s:g} s") from exc
        except BaseException:
            self._abandon(fut)
            raise

    def acquire_blocking(self, wait_s: float = DEFAULT_WAIT_S) -> Slot[T]:
        """:meth:`acquire` for worker threads (bench, prewarm). Raises :class:`RecognizerBusyError`."""
        fut = self._request()
        try:
            return fut.result(wait_s)
        except concurrent.futures.TimeoutError as exc:
            self._abandon(fut)
            raise RecognizerBusyError(f"all {self.size} speech decoders busy for {wait_s:g} s") from exc

    def release(self, slot: Slot[T]) -> None:
        """Give ``slot`` back: to the oldest live waiter, else to the free list."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if waiter.set_running_or_notify_cancel():
                    waiter.set_result(slot)
                    return
            self._free.append(slot)

    def release_when_done(self, slot: Slot[T], job: concurrent.futures.Future[Any]) -> None:
        """Release ``slot`` once ``job`` (its last submitted job) has finished, however it ends."""
        job.add_done_callback(lambda _f: self.release(slot))

    def prewarm(self) -> None:
        """Create one slot's decoder now (blocking) so the first utterance does not pay for loading."""
        slot = self.acquire_blocking()
        job = slot.submit(lambda _dec: None)
        self.release_when_done(slot, job)
        job.result()
