"""The caller-bound side of a bridge session: one writer task for the ``Converse`` response stream.

Producers (the provider pump, tool tasks, the caller reader) only queue frames, so none of them waits on
gRPC. A gRPC stream allows one write in flight; when the writer falls behind (many sessions on one loop)
the agent audio chunks queued for the same item are merged into one ``AudioFrame`` (up to
``max_merge_bytes``), so the backlog is caught up in a few writes instead of growing. With an idle
writer nothing is merged and each chunk goes out at once. Barge-in drops all queued agent audio.

Every frame is teed to the recorder as written (merged audio as one frame), sequence numbers are given
at write time, and the barge-in state learns what was actually sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from rtvoice.bridge.barge_in import BargeIn
from rtvoice.core.spans import Span
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger(__name__)

Writer = Callable[[pb.ServerFrame], Awaitable[None]]


class RecorderSink(Protocol):
    """What a session needs of ``rtvoice.bridge.recorder_link.RecorderLink`` (all non-blocking)."""

    def record_client(self, frame: pb.ClientFrame, t_us: int | None = None) -> None: ...
    def record_server(self, frame: pb.ServerFrame) -> None: ...
    def record_span(self, span: Span) -> None: ...


@dataclass(slots=True)
class _AudioChunk:
    data: bytes
    item_id: str
    content_index: int


class CallerOutbox:
    """Queue + writer of frames to the caller. ``max_merge_bytes`` bounds one merged audio frame."""

    def __init__(
        self,
        write: Writer,
        recorder: RecorderSink,
        barge_in: BargeIn,
        audio_format: pb.AudioFormat,
        max_merge_bytes: int,
    ) -> None:
        self._write = write
        self._recorder = recorder
        self._barge_in = barge_in
        self._fmt = audio_format
        self._max_merge = max_merge_bytes
        self._queue: deque[pb.ServerFrame | _AudioChunk] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._seq = 0
        self.caller_gone = False
        #: Instrumentation hook (benchmarks): called with the number of chunks in each written audio frame.
        self.on_audio_written: Callable[[int], None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, frame: pb.ServerFrame) -> None:
        """Queue a frame (never blocks)."""
        self._queue.append(frame)
        self._idle.clear()
        self._wake.set()

    def put_audio(self, data: bytes, item_id: str, content_index: int) -> None:
        """Queue agent audio in the caller's output format (never blocks)."""
        self._queue.append(_AudioChunk(data, item_id, content_index))
        self._idle.clear()
        self._wake.set()

    def has_audio(self) -> bool:
        return any(isinstance(e, _AudioChunk) for e in self._queue)

    def purge_audio(self) -> set[str]:
        """Barge-in: drop every queued agent audio chunk; returns the item ids that lost audio."""
        items = {e.item_id for e in self._queue if isinstance(e, _AudioChunk)}
        if items:
            self._queue = deque(e for e in self._queue if not isinstance(e, _AudioChunk))
        return items

    async def run(self) -> None:
        """The writer loop; returns after :meth:`close` once the queue is written."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._write_one(self._queue.popleft())
            self._idle.set()
            if self._closing:
                return

    async def _write_one(self, entry: pb.ServerFrame | _AudioChunk) -> None:
        chunks = 0
        if isinstance(entry, _AudioChunk):
            parts, size, chunks = [entry.data], len(entry.data), 1
            while self._queue:
                nxt = self._queue[0]
                if not isinstance(nxt, _AudioChunk) or nxt.item_id != entry.item_id:
                    break
                if size + len(nxt.data) > self._max_merge:
                    break
                self._queue.popleft()
                parts.append(nxt.data)
                size += len(nxt.data)
                chunks += 1
            self._seq += 1
            data = parts[0] if chunks == 1 else b"".join(parts)
            self._barge_in.on_sent(entry.item_id, len(data))
            frame = pb.ServerFrame(
                audio=pb.AudioFrame(
                    data=data,
                    format=self._fmt,
                    sequence=self._seq,
                    item_id=entry.item_id,
                    content_index=entry.content_index,
                )
            )
        else:
            frame = entry
        self._recorder.record_server(frame)
        if not self.caller_gone:
            try:
                await self._write(frame)
            except Exception as err:  # the caller's stream is gone (cancelled RPC, closed channel)
                log.debug("caller write failed: %s", err)
                self.caller_gone = True
        if chunks and self.on_audio_written is not None:
            self.on_audio_written(chunks)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (bounded by ``timeout_s``), then let :meth:`run` return."""
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("caller writer did not drain in %.1f s; %d frames left", timeout_s, len(self._queue))
