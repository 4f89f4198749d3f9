"""The recorder link's frame queue: stamping, the drop policy, numbering, the un-acked window, LinkStats.

Frames wait in ``pending`` (spans in their own queue) until the sender numbers them (``seq``, contiguous
from 2; the start frame is 1) and moves them to ``unacked``, where they stay until the recorder acks them
as durable. ``max_pending`` bounds the waiting frames: when it is reached, a queued span is evicted for a
new frame; a new span, or a frame when no span is left to evict, is dropped and counted by kind
(``span``, ``caller_audio``, ``agent_audio``, ``other``). Not thread-safe: use it from the event loop.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from rtvoice.v1 import recorder_pb2 as rpb

log = logging.getLogger(__name__)
FIRST_SEQ = 2  # seq 1 is the stream's start frame
KINDS = ("span", "caller_audio", "agent_audio", "other")


class LinkQueue:
    """Frames of one session between the voice loop and the recorder stream (see the module docstring).

    ``clock_t0_ns`` is ``time.monotonic_ns()`` at session start: frames are stamped ``t_us`` since then.
    """

    def __init__(self, clock_t0_ns: int, max_pending: int) -> None:
        self._t0 = clock_t0_ns
        self.max_pending = max_pending
        self.frames: deque[rpb.RecordFrame] = deque()
        self.spans: deque[rpb.RecordFrame] = deque()
        self.unacked: deque[rpb.RecordFrame] = deque()
        self.drops = dict.fromkeys(KINDS, 0)
        self.sent = 0
        self.closed = False
        self._next_seq = FIRST_SEQ

    @property
    def frames_dropped(self) -> int:
        """Non-span frames dropped (every kind but spans)."""
        return self.drops["caller_audio"] + self.drops["agent_audio"] + self.drops["other"]

    @property
    def backlog(self) -> int:
        """Frames not yet durable: un-acked plus waiting."""
        return len(self.unacked) + len(self.frames) + len(self.spans)

    def stats(self) -> rpb.LinkStats:
        """The cumulative counters as a ``LinkStats`` message."""
        d = self.drops
        return rpb.LinkStats(
            frames_sent=self.sent,
            frames_dropped=self.frames_dropped,
            spans_dropped=d["span"],
            caller_audio_frames_dropped=d["caller_audio"],
            agent_audio_frames_dropped=d["agent_audio"],
        )

    def stamp(self, t_us: int | None = None, **payload: Any) -> rpb.RecordFrame:
        """A ``RecordFrame`` with ``payload`` stamped ``t_us`` (default: now) on the session clock."""
        if t_us is None:
            t_us = (time.monotonic_ns() - self._t0) // 1000
        return rpb.RecordFrame(t_us=t_us, **payload)

    def put(self, kind: str, t_us: int | None = None, **payload: Any) -> bool:
        """Queue a frame of ``kind`` (one of :data:`KINDS`) stamped ``t_us`` (default: now); False when it
        was dropped (and counted)."""
        if self.closed:
            self.drops[kind] += 1  # after close(): too late for this archive, but counted
            return False
        try:
            is_span = kind == "span"
            if len(self.frames) + len(self.spans) >= self.max_pending:
                if is_span or not self.spans:
                    self.drops[kind] += 1
                    return False
                self.spans.popleft()
                self.drops["span"] += 1
            (self.spans if is_span else self.frames).append(self.stamp(t_us, **payload))
            return True
        except Exception:  # never let recording break the voice loop
            log.debug("frame not recordable", exc_info=True)
            self.drops[kind] += 1
            return False

    def take(self, limit: int) -> list[rpb.RecordFrame]:
        """Number the oldest waiting frames (frames and spans merged by time) while fewer than ``limit``
        are un-acked; they move to ``unacked``. A ``link_stats`` frame gets the counters as of now."""
        batch: list[rpb.RecordFrame] = []
        while len(self.unacked) < limit:
            if self.frames and (not self.spans or self.frames[0].t_us <= self.spans[0].t_us):
                frame = self.frames.popleft()
            elif self.spans:
                frame = self.spans.popleft()
            else:
                break
            frame.seq = self._next_seq
            self._next_seq += 1
            if frame.HasField("link_stats"):
                frame.link_stats.CopyFrom(self.stats())  # every frame numbered before it
            self.unacked.append(frame)
            batch.append(frame)
            self.sent += 1
        return batch

    def acked(self, durable_seq: int) -> None:
        """Forget the un-acked frames the recorder confirmed (``seq <= durable_seq``)."""
        while self.unacked and self.unacked[0].seq <= durable_seq:
            self.unacked.popleft()

    def stats_first(self) -> None:
        """Put a ``LinkStats`` frame at the head of the queue (once; a resumed stream sends it first)."""
        if not (self.frames and self.frames[0].HasField("link_stats")):
            self.frames.appendleft(self.stamp(link_stats=self.stats()))
