"""The two audio paths of a bridge session; both formats are fixed at ``SessionStart``.

* :class:`CallerAudioIn`: caller → provider. The caller's input format was validated once (session
  config); per frame only the byte-length check that protects the converter remains
  (``validate_frame``: empty, odd PCM16 length, longer than 1 s). It counts the caller's samples: the
  session clock's caller time.
* :class:`AgentAudioOut`: provider → caller. Converts agent audio to the caller's output format per item
  (the resampler tail is flushed when the item ends or changes and dropped on barge-in), skips what the
  session's :class:`~rtvoice.bridge.barge_in.BargeIn` says was cut, and queues the rest on the outbox.
"""

from __future__ import annotations

from rtvoice.bridge.barge_in import BargeIn
from rtvoice.bridge.clock import SampleClock
from rtvoice.bridge.outbox import CallerOutbox
from rtvoice.core.audio import AudioConverter, AudioFormat, validate_frame
from rtvoice.v1 import frames_pb2 as pb


class CallerAudioIn:
    """Caller audio in ``caller_fmt`` → bytes in ``provider_fmt``, with its session time."""

    def __init__(self, caller_fmt: AudioFormat, provider_fmt: AudioFormat) -> None:
        self.fmt = caller_fmt
        self.clock = SampleClock(caller_fmt)
        self._conv = AudioConverter(caller_fmt, provider_fmt)

    def accept(self, data: bytes) -> tuple[bytes, int]:
        """``(provider-format bytes, session time in µs just after the frame's last sample)`` — when the
        frame had fully arrived if the caller streams in real time; the bytes may be empty while the
        resampler fills. Raises ``RealtimeAudioFormatError`` (``empty_frame``, ``odd_pcm_length``,
        ``frame_too_large``); a rejected frame does not advance the clock."""
        validate_frame(data, self.fmt)
        self.clock.advance(len(data))
        return self._conv.convert(data), self.clock.position_us


class AgentAudioOut:
    """Agent audio in ``provider_fmt`` → caller frames in ``caller_fmt`` on ``outbox``."""

    def __init__(
        self, provider_fmt: AudioFormat, caller_fmt: AudioFormat, outbox: CallerOutbox, barge_in: BargeIn
    ) -> None:
        self._conv = AudioConverter(provider_fmt, caller_fmt)
        self._outbox = outbox
        self._barge = barge_in
        #: the item being converted now (its resampler tail not yet flushed)
        self.item: str | None = None
        self._content_index = 0

    def on_audio(self, audio: pb.AudioFrame) -> bool:
        """One provider audio frame (empty ``data`` = end of the item's audio); True when caller audio
        was queued."""
        item = audio.item_id
        if self._barge.is_cut(item):
            return False  # late audio of an item cut by barge-in
        if not audio.data:
            if item == self.item:
                self.flush()
            return False
        self._barge.on_generated(item, len(audio.data))
        if item != self.item:
            self.flush()
            self.item = item
            self._content_index = audio.content_index
        data = self._conv.convert(audio.data)
        if not data:
            return False
        self._outbox.put_audio(data, item, audio.content_index)
        return True

    def flush(self) -> None:
        """The current item's audio ended: queue the resampler tail."""
        item, self.item = self.item, None
        if item is not None:
            tail = self._conv.flush()
            if tail:
                self._outbox.put_audio(tail, item, self._content_index)

    def purge(self) -> tuple[set[str], str | None]:
        """Barge-in: drop queued agent audio and the resampler state. Returns the items that lost queued
        audio and the item that was being converted."""
        queued = self._outbox.purge_audio()
        item, self.item = self.item, None
        self._conv.reset()
        return queued, item
