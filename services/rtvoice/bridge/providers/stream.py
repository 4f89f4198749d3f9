"""The frames a provider conversation produces, in order, for ``RealtimeProvider.events``.

Speech events are put on the session clock here (:class:`~rtvoice.bridge.clock.ProviderTimeline`): a
connection's ``audio_start_ms`` / ``audio_end_ms`` count from the first caller audio that connection got,
and a provider without audio times (Gemini) has its events stamped with the caller audio sent so far. A
``speech_started`` that a replacement connection repeats for the utterance already open is dropped (and
a ``speech_stopped`` without an open utterance), so every start has exactly one stop. The end of speech
and the start of a response are utterance boundaries: the caller audio before them needs no replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from rtvoice.bridge.clock import ProviderTimeline
from rtvoice.core.end_reason import EndReason, end_frame
from rtvoice.core.errors import RealtimeError
from rtvoice.v1 import frames_pb2 as pb


class EventStream:
    """Queue of frames until ``end``. ``speech_times``: the provider's speech events carry audio times;
    ``boundary`` is called at each utterance boundary."""

    def __init__(self, timeline: ProviderTimeline, speech_times: bool, boundary: Callable[[], None]) -> None:
        self._timeline = timeline
        self._speech_times = speech_times
        self._boundary = boundary
        self._queue: asyncio.Queue[pb.ServerFrame] = asyncio.Queue()
        self._speech_open = False
        #: the caller item of the open utterance, and ids a replacement connection gave the same one
        self._open_item = ""
        self._alias: dict[str, str] = {}
        self.ended = False

    async def events(self) -> AsyncIterator[pb.ServerFrame]:
        """Frames in order until ``end``."""
        while True:
            frame = await self._queue.get()
            yield frame
            if frame.HasField("end"):
                return

    def emit(self, frame: pb.ServerFrame) -> None:
        """Queue one frame as it is (nothing after ``end``)."""
        if not self.ended:
            self._queue.put_nowait(frame)

    def report(self, err: RealtimeError) -> None:
        """An ``error`` frame for ``err``."""
        self.emit(pb.ServerFrame(error=err.to_frame()))

    def end(self, reason: EndReason) -> None:
        """The final ``end`` frame (once)."""
        if not self.ended:
            self.emit(pb.ServerFrame(end=end_frame(reason)))
            self.ended = True

    def publish(self, frames: list[pb.ServerFrame]) -> None:
        """Queue translated frames, speech times moved onto the session clock."""
        for frame in frames:
            kind = frame.WhichOneof("frame")
            if kind == "speech_started" or kind == "speech_stopped":
                if not self._speech(frame, kind == "speech_started"):
                    continue
            elif kind == "transcript" and frame.transcript.item_id in self._alias:
                frame.transcript.item_id = self._alias[frame.transcript.item_id]
            elif kind == "response_started":
                self._boundary()  # the model answers: the caller's turn was committed
            if not self.ended:
                self._queue.put_nowait(frame)

    def _speech(self, frame: pb.ServerFrame, started: bool) -> bool:
        body = frame.speech_started if started else frame.speech_stopped
        if started == self._speech_open:
            if started and body.item_id and self._open_item:
                self._alias[body.item_id] = self._open_item  # the same utterance, heard again
            return False
        self._speech_open = started
        if started:
            self._open_item = body.item_id
            frame.speech_started.audio_start_ms = self._session_ms(frame.speech_started.audio_start_ms)
        else:
            if body.item_id in self._alias:
                body.item_id = self._alias[body.item_id]
            frame.speech_stopped.audio_end_ms = self._session_ms(frame.speech_stopped.audio_end_ms)
            self._boundary()
        return True

    def _session_ms(self, provider_ms: int) -> int:
        if self._speech_times or provider_ms:
            return self._timeline.to_session_ms(provider_ms)
        return round(self._timeline.given_ms)
