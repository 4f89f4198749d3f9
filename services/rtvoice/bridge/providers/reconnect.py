"""Reconnect policy of provider adapters: bounded exponential backoff and a bounded audio backlog.

While a provider connection is being replaced, caller audio keeps arriving; it is kept (up to
``reconnect_buffer_ms``, oldest dropped first) and sent to the new connection, so a short outage loses
no speech.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator


def backoff_delays_s(attempts: int, base_s: float = 0.2, cap_s: float = 5.0) -> Iterator[float]:
    """``attempts`` delays: 0 first, then base·2^n with ±20 % jitter, capped at ``cap_s``."""
    for n in range(attempts):
        if n == 0:
            yield 0.0
        else:
            delay = min(cap_s, base_s * 2 ** (n - 1))
            yield delay * random.uniform(0.8, 1.2)


class AudioBacklog:
    """Bounded FIFO of audio chunks (bytes). ``max_bytes`` 0 keeps nothing."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return self._size

    def push(self, data: bytes) -> None:
        """Append a chunk; drops the oldest chunks beyond ``max_bytes``."""
        self._chunks.append(data)
        self._size += len(data)
        while self._size > self.max_bytes and self._chunks:
            old = self._chunks.popleft()
            self._size -= len(old)
            self.dropped_bytes += len(old)

    def drain(self) -> list[bytes]:
        """All chunks, oldest first; the backlog is empty afterwards."""
        out = list(self._chunks)
        self._chunks.clear()
        self._size = 0
        return out
