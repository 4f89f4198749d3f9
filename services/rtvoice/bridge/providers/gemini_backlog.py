"""Client messages held while the Gemini connection is being (re)established.

Caller audio keeps arriving while the bridge reconnects (``goAway``, steer, a dropped connection). It is
kept here, in order with control messages (``activityStart``/``End``, text turns, tool results), and
sent on the new connection right after ``setupComplete``. Audio is bounded by ``max_audio_bytes``
(``session.reconnectBufferMs`` of PCM16 16 kHz = 32 bytes/ms); the oldest audio is dropped first,
control messages are never dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    text: str
    audio_bytes: int


class MessageBacklog:
    """FIFO of encoded client messages; ``audio_bytes`` > 0 marks an audio message (droppable)."""

    def __init__(self, max_audio_bytes: int) -> None:
        self.max_audio_bytes = max_audio_bytes
        self._entries: deque[_Entry] = deque()
        self.audio_bytes = 0
        #: audio bytes dropped because the backlog was full (since creation)
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, text: str, audio_bytes: int = 0) -> int:
        """Append a message; returns the audio bytes dropped to stay within the bound (0 normally)."""
        self._entries.append(_Entry(text, audio_bytes))
        self.audio_bytes += audio_bytes
        dropped = 0
        while self.audio_bytes > self.max_audio_bytes:
            victim = next((e for e in self._entries if e.audio_bytes), None)
            if victim is None:
                break
            self._entries.remove(victim)
            self.audio_bytes -= victim.audio_bytes
            dropped += victim.audio_bytes
        self.dropped_bytes += dropped
        return dropped

    def first_is(self, text: str) -> bool:
        """Whether the oldest held message is exactly ``text``."""
        return bool(self._entries) and self._entries[0].text == text

    def peek(self) -> tuple[str, int]:
        """The oldest message as ``(text, audio_bytes)``; raises ``IndexError`` when empty."""
        e = self._entries[0]
        return e.text, e.audio_bytes

    def pop(self) -> None:
        """Forget the oldest message (after it was sent)."""
        e = self._entries.popleft()
        self.audio_bytes -= e.audio_bytes
