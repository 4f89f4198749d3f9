"""Client messages held while a provider connection is being (re)established.

Caller audio keeps arriving while the bridge replaces a provider connection (a drop, a recycle, a
``goAway``, a steer that needs a new session). It is kept here, in order with control messages (text
turns, tool results, commits, ``activityStart``/``End``), and sent on the new connection as soon as it is
ready. Audio is bounded by ``max_audio_bytes`` (``session.reconnectBufferMs`` of the provider's input
format); the oldest audio is dropped first, control messages are never dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    text: str
    audio_bytes: int
    #: session position (provider-format bytes) of an audio message's first byte; -1 for control
    pos: int = -1
    #: the audio itself (kept for the utterance ring once sent)
    data: bytes = b""


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

    def add(self, text: str, audio_bytes: int = 0, pos: int = -1, data: bytes = b"") -> int:
        """Append a message (audio: its session position ``pos`` and ``data``, see
        :class:`UtteranceRing`); returns the audio bytes dropped to stay within the bound (0 normally)."""
        self._entries.append(_Entry(text, audio_bytes, pos, data))
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

    def first_audio_pos(self) -> int | None:
        """Session position of the oldest held audio message, ``None`` when no audio is held."""
        return next((e.pos for e in self._entries if e.audio_bytes), None)

    def first_is(self, text: str) -> bool:
        """Whether the oldest held message is exactly ``text``."""
        return bool(self._entries) and self._entries[0].text == text

    def peek(self) -> tuple[str, int, int, bytes]:
        """The oldest message as ``(text, audio_bytes, pos, data)``; raises ``IndexError`` when empty."""
        e = self._entries[0]
        return e.text, e.audio_bytes, e.pos, e.data

    def pop(self) -> None:
        """Forget the oldest message (after it was sent)."""
        e = self._entries.popleft()
        self.audio_bytes -= e.audio_bytes


class UtteranceRing:
    """Caller audio already sent to the provider since the last utterance boundary (commit or end of
    speech), at most ``max_bytes`` (oldest dropped). After a reconnect it is sent again, before the
    backlog, so the new connection hears the whole utterance in progress. Positions are session
    positions in provider-format bytes (see ``rtvoice.bridge.clock.ProviderTimeline``)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, pos: int, data: bytes) -> None:
        self._chunks.append((pos, data))
        self._size += len(data)
        while self._size > self.max_bytes:
            self._size -= len(self._chunks.popleft()[1])

    def clear(self) -> None:
        """An utterance boundary: what was sent so far needs no replay."""
        self._chunks.clear()
        self._size = 0

    def start_pos(self) -> int | None:
        """Session position of the oldest held audio, ``None`` when empty."""
        return self._chunks[0][0] if self._chunks else None

    def chunks(self) -> list[bytes]:
        """The held audio, oldest first (kept: a second reconnect replays it again)."""
        return [data for _, data in self._chunks]
