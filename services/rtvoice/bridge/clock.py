"""The session clock of a bridge session: one time line for caller audio, agent audio and provider events.

Session time is in ms since ``SessionStart``:

* **caller time** is the sample position of caller audio: the n-th caller sample is at
  ``n / sample_rate_hz`` s, whenever the bridge happened to read it (audio that queued up while the
  provider was connecting keeps its positions instead of being stamped as one late burst);
* **agent time** is the playback model of :mod:`rtvoice.bridge.barge_in`: the caller plays agent audio as
  it arrives, item after item (see ``BargeIn.playback_start_ms``);
* **provider times** (OpenAI ``audio_start_ms`` / ``audio_end_ms``, which restart at 0 on every provider
  connection; the local engine's, which do the same; Gemini, which gives none) are mapped by
  :class:`ProviderTimeline`: a provider connection's 0 ms is the session position of the first caller
  audio it received.
"""

from __future__ import annotations

from rtvoice.core.audio import AudioFormat


class SampleClock:
    """Position of a stream of audio in ``fmt`` (the caller's audio: caller time)."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self._bytes_per_ms = fmt.bytes_per_ms
        self.bytes = 0

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` more."""
        self.bytes += nbytes

    @property
    def position_us(self) -> int:
        """Session time (µs) just after the last sample counted."""
        return int(self.bytes * 1000 / self._bytes_per_ms)

    @property
    def position_ms(self) -> float:
        """Session time (ms) just after the last sample counted."""
        return self.bytes / self._bytes_per_ms


class ProviderTimeline:
    """Maps a provider connection's audio times to session time.

    Counts caller audio handed to the provider (``fmt`` = the provider's input format) and remembers,
    per connection, the session position of the first audio that connection was sent (``origin_ms``).
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self.given = SampleClock(fmt)
        self.origin_ms = 0.0

    def give(self, nbytes: int) -> int:
        """Count ``nbytes`` of caller audio; returns their session position in provider-format bytes."""
        pos = self.given.bytes
        self.given.bytes += nbytes
        return pos

    @property
    def given_ms(self) -> float:
        """Session time (ms) just after the last caller audio handed to the provider."""
        return self.given.position_ms

    def new_connection(self, first_audio_pos: int | None) -> None:
        """A connection starts with the caller audio at byte position ``first_audio_pos`` (``None``: with
        audio from now on)."""
        pos = self.given.bytes if first_audio_pos is None else first_audio_pos
        self.origin_ms = self.given.fmt.duration_ms(pos)

    def to_session_ms(self, provider_ms: int) -> int:
        """A provider-relative time (ms of audio the current connection received) in session ms."""
        return round(self.origin_ms + provider_ms)
