"""The caller → bridge half of one session's ``Converse`` stream: a queue and one writer task.

The caller reader only queues frames (:meth:`BridgeUplink.put`), so it never pays for a gRPC write
itself. gRPC allows one write in flight per stream; while one is in flight, caller audio frames that
arrive queue up, and the next write carries all of them that are contiguous as one ``AudioFrame`` (its
``frames`` field says how many caller frames it holds; at most ``max_merge_ms`` of audio). At real-time
pace on an idle ingress every frame still goes out alone the moment it arrives, so merging adds no
latency; it only happens when the writer is behind (a burst from the caller, a busy machine), and then it
catches up in a few writes instead of falling further behind. When more than ``max_backlog_ms`` of audio
waits, :meth:`wait_for_room` holds the caller reader, which pushes back on the caller's TCP connection.

A failed write (the bridge or its stream is gone) is reported once to ``on_failed`` with gRPC's error;
frames still queued are then dropped, since nothing can carry them any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TypeAlias

import grpc
import grpc.aio

from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger(__name__)

Call: TypeAlias = "grpc.aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame]"

#: Longest merged caller audio frame, ms (the bridge accepts frames up to 1000 ms).
MAX_MERGE_MS = 200.0
#: Queued caller audio beyond which the caller reader waits, ms.
MAX_BACKLOG_MS = 2000.0


class BridgeUplink:
    """Writes ``ClientFrame``s to ``call`` in order; ``bytes_per_ms`` of the caller's input format sizes
    the merge and backlog bounds; ``on_failed(error)`` is called once, with gRPC's exception
    (``AioRpcError``, or ``InvalidStateError`` / ``UsageError`` for a stream already finished), when a write
    fails."""

    def __init__(
        self,
        call: Call,
        bytes_per_ms: float,
        on_failed: Callable[[BaseException], None],
        *,
        max_merge_ms: float = MAX_MERGE_MS,
        max_backlog_ms: float = MAX_BACKLOG_MS,
    ) -> None:
        self._call = call
        self._on_failed = on_failed
        self._max_merge = max(1, int(max_merge_ms * bytes_per_ms))
        self._max_backlog = max(1, int(max_backlog_ms * bytes_per_ms))
        self._queue: deque[pb.ClientFrame] = deque()
        self._queued_audio = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self.failed = False
        #: Writes that carried more than one caller frame.
        self.merged_writes = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ingress-uplink")

    def put(self, frame: pb.ClientFrame) -> None:
        """Queue ``frame`` (never blocks; dropped silently once the stream has failed — already reported)."""
        if self.failed or self._closing:
            return
        self._queue.append(frame)
        if frame.WhichOneof("frame") == "audio":
            self._queued_audio += len(frame.audio.data)
            if self._queued_audio > self._max_backlog:
                self._room.clear()
        self._idle.clear()
        self._wake.set()

    async def wait_for_room(self) -> None:
        """Return once less than ``max_backlog_ms`` of caller audio waits to be written."""
        if not self._room.is_set():
            await self._room.wait()

    async def finish(self, last: list[pb.ClientFrame], timeout_s: float) -> bool:
        """Queue ``last``, write everything queued, then half-close; False when that took over
        ``timeout_s`` or the stream failed (the bridge then ends the session on its own)."""
        for frame in last:
            self.put(frame)
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._idle.wait()), timeout_s)
        except TimeoutError:
            log.warning("uplink: %d frames still queued after %.1f s", len(self._queue), timeout_s)
            return False
        if self.failed:
            return False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._call.done_writing(), 1.0)
        return True

    async def aclose(self) -> None:
        """Stop the writer (after :meth:`finish`, or when the session is torn down)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and not self.failed:
                frame = self._next()
                try:
                    await self._call.write(frame)
                except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as err:
                    self._fail(err)
            if self.failed:
                self._queue.clear()
                self._queued_audio = 0
                self._room.set()
            self._idle.set()

    def _next(self) -> pb.ClientFrame:
        """The next message: the oldest frame, or the run of contiguous audio frames at the head merged."""
        first = self._queue.popleft()
        if first.WhichOneof("frame") != "audio":
            return first
        audio = first.audio
        self._queued_audio -= len(audio.data)
        size, parts, last = len(audio.data), [audio.data], audio
        while self._queue and self._queue[0].WhichOneof("frame") == "audio":
            nxt = self._queue[0].audio
            if size + len(nxt.data) > self._max_merge:
                break
            self._queue.popleft()
            self._queued_audio -= len(nxt.data)
            parts.append(nxt.data)
            size += len(nxt.data)
            last = nxt
        if self._queued_audio <= self._max_backlog:
            self._room.set()
        if len(parts) == 1:
            return first
        self.merged_writes += 1
        merged = pb.AudioFrame(
            data=b"".join(parts),
            format=audio.format,
            sequence=last.sequence,
            capture_ts_ms=audio.capture_ts_ms,
            frames=len(parts),
        )
        return pb.ClientFrame(audio=merged)

    def _fail(self, err: BaseException) -> None:
        if not self.failed:
            self.failed = True
            self._on_failed(err)
