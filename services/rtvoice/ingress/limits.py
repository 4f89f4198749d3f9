"""Per-session limits of the ingress: sizes, rates, durations and the bounded queue toward the caller.

A slow caller must not grow server memory: agent audio waits in an :class:`OutboundQueue` bounded by
milliseconds of audio; when it is full the *oldest* audio is dropped and counted (the count ends up in
``session.ended`` and in the ``EndFrame`` reason sent to the bridge, see session.py).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import asdict, dataclass
from typing import Any

from rtvoice.core.audio import AudioFormat, validate_frame
from rtvoice.core.errors import (
    RealtimeAudioFormatError,
    RealtimeError,
    RealtimeLimitError,
    RealtimeReadTimeout,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Session limits (flags of ``rtvoice ingress``).

    - ``max_session_s``: a session ends (``limit``/``max_session_duration``) after this many seconds.
    - ``idle_timeout_s``: a session ends (``read_timeout``/``idle_timeout``) when the caller sends nothing.
    - ``max_frames_per_s``: inbound messages (audio + events) per second; burst of one second's worth.
    - ``max_frame_bytes``: largest binary audio message; larger ones get ``audio_format``/``frame_too_large``.
    - ``max_text_bytes``: largest text (JSON) message; larger ones get ``limit``/``message_too_large``.
    - ``max_outbound_audio_ms``: agent audio queued toward a slow caller before the oldest is dropped.
    - ``max_outbound_events``: queued JSON events toward a caller before it is cut off (``slow_consumer``).
    """

    max_session_s: float = 3600.0
    idle_timeout_s: float = 60.0
    max_frames_per_s: float = 200.0
    max_frame_bytes: int = 32000
    max_text_bytes: int = 65536
    max_outbound_audio_ms: float = 5000.0
    max_outbound_events: int = 2000

    @property
    def websocket_max_size(self) -> int:
        """Hard cap given to ``websockets`` (the connection closes with 1009 above it): 4× the larger
        soft limit, so moderately oversized messages get a typed error instead."""
        return 4 * max(self.max_frame_bytes, self.max_text_bytes) + 1024

    def public(self) -> dict[str, Any]:
        """The limits as sent to the caller in ``session.started``."""
        return asdict(self)


class RateLimiter:
    """Token bucket: ``rate_per_s`` tokens per second, holding at most ``burst`` (default: one second)."""

    def __init__(self, rate_per_s: float, burst: float | None = None, now: float | None = None) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst if burst is not None else max(rate_per_s, 1.0)
        self._tokens = self.burst
        self._last = time.monotonic() if now is None else now

    def allow(self, now: float | None = None) -> bool:
        """Take one token if available; ``now`` is ``time.monotonic()`` seconds."""
        t = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + (t - self._last) * self.rate_per_s)
        self._last = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class OutboundOverflow(Exception):
    """More JSON events are queued toward the caller than :attr:`Limits.max_outbound_events`."""


@dataclass(frozen=True, slots=True)
class Close:
    """Queue sentinel: close the WebSocket with ``code`` / ``reason`` after everything before it."""

    code: int
    reason: str


OutboundItem = bytes | str | Close


class OutboundQueue:
    """FIFO of messages toward one caller: ``bytes`` = audio, ``str`` = a JSON event, :class:`Close`.

    Audio is bounded by ``max_audio_ms`` (``bytes_per_ms`` converts sizes); when a new chunk does not fit,
    the oldest queued audio is dropped and :attr:`dropped_audio_frames` counts it. Events are never dropped;
    more than ``max_events`` queued raises :class:`OutboundOverflow`.
    """

    def __init__(self, max_audio_ms: float, max_events: int, bytes_per_ms: float = 32.0) -> None:
        self.max_audio_ms = max_audio_ms
        self.max_events = max_events
        self.bytes_per_ms = bytes_per_ms
        self.dropped_audio_frames = 0
        self.dropped_audio_ms = 0.0
        self._items: collections.deque[OutboundItem] = collections.deque()
        self._audio_ms = 0.0
        self._events = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_audio_ms(self) -> float:
        return self._audio_ms

    def put_event(self, text: str) -> None:
        if self._events >= self.max_events:
            raise OutboundOverflow(f"{self._events} events queued toward a caller that does not read")
        self._items.append(text)
        self._events += 1
        self._ready.set()

    def put_audio(self, data: bytes) -> None:
        ms = len(data) / self.bytes_per_ms
        while self._audio_ms + ms > self.max_audio_ms and self._drop_oldest_audio():
            pass
        self._items.append(data)
        self._audio_ms += ms
        self._ready.set()

    def put_close(self, code: int, reason: str) -> None:
        self._items.append(Close(code, reason))
        self._ready.set()

    def drop_audio(self) -> int:
        """Remove every queued audio chunk (barge-in; not counted as dropped); returns how many."""
        kept: collections.deque[OutboundItem] = collections.deque(
            i for i in self._items if not isinstance(i, bytes)
        )
        removed = len(self._items) - len(kept)
        self._items = kept
        self._audio_ms = 0.0
        return removed

    def _drop_oldest_audio(self) -> bool:
        for i, item in enumerate(self._items):
            if isinstance(item, bytes):
                del self._items[i]
                ms = len(item) / self.bytes_per_ms
                self._audio_ms = max(0.0, self._audio_ms - ms)
                self.dropped_audio_frames += 1
                self.dropped_audio_ms += ms
                return True
        return False

    async def get(self) -> OutboundItem:
        """The next message, waiting while the queue is empty."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._audio_ms = max(0.0, self._audio_ms - len(item) / self.bytes_per_ms)
        elif isinstance(item, str):
            self._events -= 1
        return item


class SessionGuard:
    """Applies :class:`Limits` to one session's inbound messages and deadlines (``time.monotonic()`` s).

    - :meth:`admit` — rate limit; returns ``(allowed, error)`` where ``error`` (``limit``/``rate_limited``,
      retryable) is given at most once per second, counting the messages dropped so far;
    - :meth:`check_audio` / :meth:`check_text` — raise ``audio_format``/``frame_too_large`` (and the other
      ``validate_frame`` codes) or ``limit``/``message_too_large``;
    - :meth:`expired` — ``(reason, fatal error)`` once the session is too long (``max_duration``) or idle
      (``idle_timeout``), else ``None``.
    """

    def __init__(self, limits: Limits, now: float | None = None) -> None:
        self.limits = limits
        self.started = time.monotonic() if now is None else now
        self.last_inbound = self.started
        self.rate_dropped = 0
        self._rate = RateLimiter(limits.max_frames_per_s, now=self.started)
        self._rate_error_at = float("-inf")

    def admit(self, now: float) -> tuple[bool, RealtimeError | None]:
        self.last_inbound = now
        if self._rate.allow(now):
            return True, None
        self.rate_dropped += 1
        if now - self._rate_error_at < 1.0:
            return False, None
        self._rate_error_at = now
        return False, RealtimeLimitError(
            f"more than {self.limits.max_frames_per_s:g} messages/s; "
            f"{self.rate_dropped} message(s) dropped so far",
            code="rate_limited",
            retryable=True,
        )

    def check_audio(self, data: bytes, fmt: AudioFormat) -> None:
        limit = self.limits.max_frame_bytes
        if len(data) > limit:
            raise RealtimeAudioFormatError(
                f"audio message of {len(data)} bytes exceeds the {limit}-byte limit "
                f"({fmt.duration_ms(limit):.0f} ms of {fmt.name}); send 20-100 ms per message",
                code="frame_too_large",
            )
        validate_frame(data, fmt, max_ms=fmt.duration_ms(limit) + 1.0)

    def check_text(self, text: str) -> None:
        nbytes = len(text.encode("utf-8", "surrogatepass"))
        if nbytes > self.limits.max_text_bytes:
            raise RealtimeLimitError(
                f"text message of {nbytes} bytes exceeds the {self.limits.max_text_bytes}-byte limit",
                code="message_too_large",
            )

    def expired(self, now: float) -> tuple[str, RealtimeError] | None:
        if now - self.started >= self.limits.max_session_s:
            return "max_duration", RealtimeLimitError(
                f"the session reached its maximum length of {self.limits.max_session_s:g} s",
                code="max_session_duration",
                fatal=True,
            )
        if now - self.last_inbound >= self.limits.idle_timeout_s:
            return "idle_timeout", RealtimeReadTimeout(
                f"nothing received from the caller for {self.limits.idle_timeout_s:g} s",
                code="idle_timeout",
                fatal=True,
            )
        return None
