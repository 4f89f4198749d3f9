"""The sending half of a provider conversation: one live socket or, while none is, an ordered backlog.

Every client message goes through :meth:`Outlet.send` (control) or :meth:`Outlet.send_audio` (caller
audio in the provider's input format). While the connection is live they are sent at once; while it is
being replaced they wait in a :class:`~rtvoice.bridge.providers.backlog.MessageBacklog` (audio bounded,
oldest dropped first with one non-fatal ``reconnect_buffer_overflow`` error per outage). Caller audio
already sent since the last utterance boundary is also kept in an
:class:`~rtvoice.bridge.providers.backlog.UtteranceRing`; :meth:`Outlet.go_live` sends it again to a
replacement connection before the backlog, so speech in progress when a connection dropped is heard whole.
The :class:`~rtvoice.bridge.clock.ProviderTimeline` learns where each connection's audio starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rtvoice.bridge.clock import ProviderTimeline
from rtvoice.core.audio import AudioFormat
from rtvoice.core.errors import RealtimeError, RealtimeLimitError

from .backlog import MessageBacklog, UtteranceRing

#: Longest utterance in progress replayed to a replacement connection.
UTTERANCE_RING_MS = 10_000


@dataclass(slots=True)
class LinkStats:
    """Counters of one provider conversation (for spans, logs and benchmarks)."""

    connections: int = 0
    #: wall time from the old socket going out of service to the new one accepting audio, per reconnect
    reconnect_gaps_ms: list[float] = field(default_factory=list)
    reconnect_reasons: list[str] = field(default_factory=list)
    audio_bytes_sent: int = 0
    backlog_dropped_bytes: int = 0
    #: caller audio sent again to replacement connections (the utterance in progress)
    replayed_audio_bytes: int = 0


class Outlet:
    """Send side of one conversation. ``encode_audio`` makes the provider's append message;
    ``report`` emits a non-fatal error frame; ``backlog_ms`` is ``session.reconnectBufferMs``."""

    def __init__(
        self,
        fmt: AudioFormat,
        encode_audio: Callable[[bytes], str],
        report: Callable[[RealtimeError], None],
        backlog_ms: int,
        stats: LinkStats,
    ) -> None:
        self.fmt = fmt
        self.timeline = ProviderTimeline(fmt)
        self.stats = stats
        self._encode = encode_audio
        self._report = report
        self._backlog_ms = backlog_ms
        self._backlog = MessageBacklog(fmt.bytes_for_ms(backlog_ms))
        self._ring = UtteranceRing(fmt.bytes_for_ms(UTTERANCE_RING_MS))
        self._lock = asyncio.Lock()
        self.ws: ClientConnection | None = None
        self.live = False
        self._overflow_reported = False

    async def send(self, text: str) -> None:
        """Send a control message now, or hold it (never dropped) until the next connection is live."""
        async with self._lock:
            if not await self._try_send(text):
                self._hold(text, 0, -1, b"")

    async def send_audio(self, data: bytes) -> None:
        """Send caller audio now, or hold it (bounded) until the next connection is live."""
        pos = self.timeline.give(len(data))
        text = self._encode(data)  # before the lock: encoding needs no order
        async with self._lock:
            if await self._try_send(text):
                self.stats.audio_bytes_sent += len(data)
                self._ring.add(pos, data)
            else:
                self._hold(text, len(data), pos, data)

    def boundary(self) -> None:
        """The caller's utterance was committed (end of speech, manual commit): nothing to replay."""
        self._ring.clear()

    def holds_first(self, text: str) -> bool:
        """Whether the oldest held message is exactly ``text``."""
        return self._backlog.first_is(text)

    def out_of_service(self) -> ClientConnection | None:
        """Stop sending on the current socket (returned, for closing); later messages are held."""
        ws, self.ws, self.live = self.ws, None, False
        return ws

    async def go_live(self, ws: ClientConnection, preamble: list[str], replay: bool) -> None:
        """Make ``ws`` the live socket: send ``preamble``, then (``replay``) the utterance in progress, then
        the backlog in order. Raises ``ConnectionClosed`` when ``ws`` closes meanwhile (nothing is lost)."""
        async with self._lock:
            for text in preamble:
                await ws.send(text)
            ring = self._ring.chunks() if replay else []
            first = self._ring.start_pos() if ring else self._backlog.first_audio_pos()
            for data in ring:
                await ws.send(self._encode(data))
                self.stats.replayed_audio_bytes += len(data)
            while len(self._backlog):
                text, nbytes, pos, data = self._backlog.peek()
                await ws.send(text)
                self._backlog.pop()
                if nbytes:
                    self.stats.audio_bytes_sent += nbytes
                    self._ring.add(pos, data)
            self.timeline.new_connection(first)
            self.ws, self.live = ws, True
            self._overflow_reported = False

    async def _try_send(self, text: str) -> bool:
        ws = self.ws
        if not self.live or ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            self.live = False
            return False
        return True

    def _hold(self, text: str, nbytes: int, pos: int, data: bytes) -> None:
        dropped = self._backlog.add(text, nbytes, pos, data)
        if dropped:
            self.stats.backlog_dropped_bytes += dropped
            if not self._overflow_reported:
                self._overflow_reported = True
                self._report(
                    RealtimeLimitError(
                        f"reconnect buffer full ({self._backlog_ms} ms): oldest caller audio dropped",
                        code="reconnect_buffer_overflow",
                        retryable=True,
                    )
                )
