"""The two channels of an archive, spooled to raw PCM16 files and placed on the session clock.

Every channel is PCM16 LE mono at :data:`ARCHIVE_RATE_HZ` in its own raw file; a sample's byte offset is
``2 * position`` where position counts samples since the session started (``RecordFrame.t_us = 0``).
Writes are positioned (``os.pwrite``), so the file is sparse where nothing was written (real silence), a
barge-in can cut scheduled audio, and memory stays O(1) in the session length.

Placement:

- caller audio (:meth:`CallerTrack.place_caller`) is a continuous real-time stream: a frame that arrived at
  ``t`` with duration ``d`` starts at ``t - d`` when that is more than :data:`CALLER_JUMP_MS` past the
  cursor (a real gap), and otherwise continues at the cursor;
- agent audio (:meth:`Track.place_played`) arrives faster than real time and is played by the caller: it
  starts at ``max(cursor, t)`` (a playback model); :meth:`Track.clear` (barge-in) drops what was scheduled
  after ``t``.

Frames at other rates go through a streaming ``soxr`` resampler (:class:`rtvoice.core.audio.StreamResampler`)
per contiguous segment; a segment ends at a gap, a clear, or a change of rate.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rtvoice.core.audio import StreamResampler
from rtvoice.recorder.spool import FILE_MODE, write_all

ARCHIVE_RATE_HZ = 16000
SAMPLE_BYTES = 2
CALLER_JUMP_MS = 60
# The caller timeline keeps this many recent segments to map provider audio ms to session time.
MAX_TIMELINE_SEGMENTS = 512


def us_to_samples(t_us: int) -> int:
    """Session-clock microseconds to a sample position at :data:`ARCHIVE_RATE_HZ` (rounded down)."""
    return max(0, t_us) * ARCHIVE_RATE_HZ // 1_000_000


def samples_to_ms(position: int) -> float:
    """A sample position at :data:`ARCHIVE_RATE_HZ` to milliseconds on the session clock."""
    return position * 1000.0 / ARCHIVE_RATE_HZ


@dataclass(slots=True)
class TrackState:
    """What a restarted recorder needs to continue a track: the open segment and the file extent."""

    seg_start: int = 0
    seg_in: int = 0
    seg_in_rate: int = ARCHIVE_RATE_HZ
    seg_written: int = 0
    extent: int = 0


class Track:
    """One channel spooled to ``path`` (raw PCM16 at 16000 Hz), written at sample positions.

    ``cursor`` is the position right after the last audio fed (including samples the resampler still
    holds); ``extent`` is the file length in samples. Resuming from a :class:`TrackState` truncates the
    file to the checkpointed extent, so frames replayed after a restart land exactly once.
    """

    def __init__(self, path: Path, state: TrackState | None = None) -> None:
        self.path = path
        self.state = state or TrackState()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        os.ftruncate(self._fd, self.state.extent * SAMPLE_BYTES)
        self._dirty = True  # the truncate above, and whatever a crash left unsynced
        # A resumed segment restarts at the checkpointed cursor: resampler state is not persisted.
        self.state.seg_start, self.state.seg_in, self.state.seg_written = self.cursor, 0, 0
        self.state.seg_in_rate = ARCHIVE_RATE_HZ
        self._resampler: StreamResampler | None = None

    @property
    def cursor(self) -> int:
        """Position right after the last audio fed (samples at 16000 Hz, including resampler-held ones)."""
        s = self.state
        return s.seg_start + s.seg_in * ARCHIVE_RATE_HZ // s.seg_in_rate

    @property
    def extent(self) -> int:
        """Length of the spool file in samples."""
        return self.state.extent

    def place_played(self, t_us: int, samples: npt.NDArray[np.int16], in_rate_hz: int) -> int:
        """Agent audio (playback model): start at ``max(cursor, t)``; returns the start position."""
        start = max(self.cursor, us_to_samples(t_us))
        self.write(start, samples, in_rate_hz)
        return start

    def write(self, start: int, samples: npt.NDArray[np.int16], in_rate_hz: int) -> None:
        """Write ``samples`` (PCM16 at ``in_rate_hz``) so that they begin at position ``start``."""
        if start != self.cursor or in_rate_hz != self.state.seg_in_rate:
            self._end_segment()
            self.state.seg_start, self.state.seg_in, self.state.seg_written = start, 0, 0
            self.state.seg_in_rate = in_rate_hz
            self._resampler = (
                StreamResampler(in_rate_hz, ARCHIVE_RATE_HZ) if in_rate_hz != ARCHIVE_RATE_HZ else None
            )
        out = self._resampler.process(samples) if self._resampler is not None else samples
        self.state.seg_in += len(samples)
        self._put(out)

    def clear(self, t_us: int) -> int:
        """Barge-in at ``t``: drop everything scheduled at or after ``t``; returns the samples dropped."""
        t = us_to_samples(t_us)
        end = max(self.cursor, self.state.extent)
        if t >= end:
            return 0
        self._resampler = None  # what it holds was never heard either
        if self.state.extent > t:
            os.ftruncate(self._fd, t * SAMPLE_BYTES)
            self._dirty = True
            self.state.extent = t
        self.state.seg_start, self.state.seg_in, self.state.seg_written = t, 0, 0
        self.state.seg_in_rate = ARCHIVE_RATE_HZ
        return end - t

    def finish(self) -> None:
        """Drain the resampler's tail into the file (end of session)."""
        self._end_segment()

    def sync(self) -> None:
        """``fdatasync`` the spool file if it changed since the last sync (blocking; raises ``OSError``);
        a closed track has nothing to sync."""
        if self._fd >= 0 and self._dirty:
            os.fdatasync(self._fd)
            self._dirty = False

    def close(self) -> None:
        """Close the spool file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def read(self, start: int, count: int) -> npt.NDArray[np.int16]:
        """``count`` samples from ``start``; zeros past the end of the file."""
        data = os.pread(self._fd, count * SAMPLE_BYTES, start * SAMPLE_BYTES)
        out = np.zeros(count, dtype=np.int16)
        got = np.frombuffer(data, dtype="<i2")
        out[: len(got)] = got
        return out

    def _end_segment(self) -> None:
        if self._resampler is not None:
            self._put(self._resampler.flush())
            self._resampler = None

    def _put(self, out: npt.NDArray[np.int16]) -> None:
        if not len(out):
            return
        pos = self.state.seg_start + self.state.seg_written
        write_all(self._fd, out.astype("<i2", copy=False).tobytes(), pos * SAMPLE_BYTES)
        self._dirty = True
        self.state.seg_written += len(out)
        self.state.extent = max(self.state.extent, pos + len(out))


@dataclass(slots=True)
class TimelineState:
    """Caller audio received so far (in archive samples) and where each contiguous run was placed."""

    received: int = 0
    # [received at segment start, session position of segment start], oldest first.
    segments: list[list[int]] = field(default_factory=list)


class CallerTrack(Track):
    """The caller channel: continuous placement plus a map from received caller audio to session time.

    Providers report VAD events on their input clock (``SpeechStopped.audio_end_ms`` = ms of caller audio
    received); :meth:`session_ms_of_audio_ms` turns that into session time.
    """

    def __init__(self, path: Path, state: TrackState | None = None, timeline: TimelineState | None = None):
        super().__init__(path, state)
        self.timeline = timeline or TimelineState()

    def place_caller(self, t_us: int, samples: npt.NDArray[np.int16], in_rate_hz: int) -> int:
        """Place a caller frame that arrived at ``t_us``; returns its start position."""
        duration = len(samples) * ARCHIVE_RATE_HZ // in_rate_hz
        candidate = max(0, us_to_samples(t_us) - duration)
        jump = candidate - self.cursor > CALLER_JUMP_MS * ARCHIVE_RATE_HZ // 1000
        start = candidate if jump or not self.timeline.segments else self.cursor
        if start != self.cursor or not self.timeline.segments:
            self.timeline.segments.append([self.timeline.received, start])
            del self.timeline.segments[:-MAX_TIMELINE_SEGMENTS]
        self.write(start, samples, in_rate_hz)
        self.timeline.received += duration
        return start

    def session_ms_of_audio_ms(self, audio_ms: float) -> float | None:
        """Session time (ms) when ``audio_ms`` of caller audio had been received; None before any audio."""
        target = int(audio_ms * ARCHIVE_RATE_HZ / 1000)
        best: list[int] | None = None
        for seg in self.timeline.segments:
            if seg[0] <= target:
                best = seg
            else:
                break
        if best is None:
            best = self.timeline.segments[0] if self.timeline.segments else None
        if best is None:
            return None
        return samples_to_ms(best[1] + max(0, target - best[0]))


def track_state_dict(track: Track) -> dict[str, Any]:
    """JSON-ready state of a track (and its timeline for the caller track)."""
    out: dict[str, Any] = {"track": asdict(track.state)}
    if isinstance(track, CallerTrack):
        out["timeline"] = asdict(track.timeline)
    return out


def caller_track_from(path: Path, data: dict[str, Any] | None) -> CallerTrack:
    """A caller track continuing from :func:`track_state_dict` output (or a fresh one)."""
    if not data:
        return CallerTrack(path)
    return CallerTrack(path, TrackState(**data["track"]), TimelineState(**data["timeline"]))


def agent_track_from(path: Path, data: dict[str, Any] | None) -> Track:
    """An agent track continuing from :func:`track_state_dict` output (or a fresh one)."""
    return Track(path, TrackState(**data["track"]) if data else None)
