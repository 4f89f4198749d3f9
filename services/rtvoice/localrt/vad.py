"""Voice activity detection with ``webrtcvad`` on 16 kHz PCM16, 20 ms frames, OpenAI server_vad semantics.

:class:`VoiceActivityDetector` consumes 16 kHz samples and emits :class:`VadEvent`\\ s on the *input-audio
clock* (ms of audio appended since the session started, see OpenAI ``input_audio_buffer.speech_started``):

- ``start``: ``ms`` = where speech began (``audio_start_ms``); ``audio`` = the speech so far preceded by up
  to ``prefix_padding_ms`` of audio (what the user item keeps before the speech).
- ``audio``: more samples of the ongoing utterance (speech and the silence inside it).
- ``stop``: ``ms`` = where speech ended (``audio_end_ms``), emitted once ``silence_duration_ms`` of silence
  has followed it; ``audio`` = the remaining samples up to that point.

A frame counts as speech only if webrtcvad says so *and* its RMS is ``margin_db`` above an adaptive noise
floor. The energy gate removes webrtcvad's hangover (it marks frames as speech for ~80–120 ms after the
voice fades, see field notes), so ``audio_end_ms`` lands on the real end, and it rejects stationary noise
that webrtcvad takes for speech until it adapts (white noise at -40 dBFS reads as speech for seconds).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import webrtcvad

SAMPLE_RATE_HZ = 16000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000
START_FRAMES = 3  # voiced frames in a row that confirm speech (60 ms): ignores clicks
MIN_FLOOR_DB = 20.0  # noise floor never below RMS 10 (digital silence would make any click "speech")
FLOOR_RISE_DB = 0.3  # per quiet frame outside speech (15 dB/s): follows rising noise
FLOOR_FALL_DB = 2.0  # per quieter frame outside speech: a short gap does not reset the floor

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class VadEvent:
    """One VAD output: ``kind`` start|audio|stop, ``ms`` on the input clock (start/stop), 16 kHz ``audio``."""

    kind: Literal["start", "audio", "stop"]
    ms: int
    audio: Samples = field(repr=False)


def margin_db(threshold: float) -> float:
    """Energy a speech frame needs above the noise floor: 6 dB at threshold 0, 12 dB at 0.5, 18 dB at 1."""
    return 6.0 + 12.0 * threshold


def webrtc_mode(threshold: float) -> int:
    """Map an OpenAI ``threshold`` (0–1, higher = needs louder/clearer speech) to webrtcvad mode 0–3."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within 0..1, got {threshold}")
    return min(3, int(threshold * 4))


def _rms_db(frame: Samples) -> float:
    rms = math.sqrt(float(np.mean(frame.astype(np.float64) ** 2))) if frame.size else 0.0
    return 20.0 * math.log10(rms + 1e-9)


class VoiceActivityDetector:
    """Streaming server_vad for one session (not thread-safe; one per session).

    ``clock_start_ms``: input-clock position of the first sample fed (turn detection may be switched on
    mid-session). ``threshold`` 0–1 (OpenAI default 0.5 → webrtcvad mode 2), ``prefix_padding_ms`` (default
    300), ``silence_duration_ms`` (default 500). Raises ``ValueError`` for out-of-range settings.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        clock_start_ms: int = 0,
    ) -> None:
        if prefix_padding_ms < 0 or silence_duration_ms < 0:
            raise ValueError("prefix_padding_ms and silence_duration_ms must be >= 0")
        self._settings = (threshold, prefix_padding_ms, silence_duration_ms)
        self._vad = webrtcvad.Vad(webrtc_mode(threshold))
        self._margin_db = margin_db(threshold)
        self._floor_db: float | None = None
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_frames = max(1, math.ceil(silence_duration_ms / FRAME_MS))
        self._clock_start_ms = clock_start_ms
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_done = 0
        keep = max(START_FRAMES, math.ceil(prefix_padding_ms / FRAME_MS) + START_FRAMES)
        self._history: collections.deque[tuple[Samples, bool]] = collections.deque(maxlen=keep)
        self.in_speech = False
        self._silence_run = 0
        self._tail: list[Samples] = []  # frames since the last voiced frame (during speech)
        self._last_voiced = 0

    def fresh(self, clock_start_ms: int) -> VoiceActivityDetector:
        """A new detector with the same settings whose clock starts at ``clock_start_ms``."""
        return VoiceActivityDetector(*self._settings, clock_start_ms=clock_start_ms)

    def _frame_ms(self, index: int) -> int:
        return self._clock_start_ms + index * FRAME_MS

    def process(self, samples: Samples) -> list[VadEvent]:
        """Feed 16 kHz PCM16 samples (any length); returns the events they complete, in order."""
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_frames = buf.size // FRAME_SAMPLES
        self._pending = buf[n_frames * FRAME_SAMPLES :].copy()
        events: list[VadEvent] = []
        speech_audio: list[Samples] = []
        for i in range(n_frames):
            frame = buf[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            index = self._frames_done
            self._frames_done += 1
            voiced = self._is_speech(frame)
            if not self.in_speech:
                self._history.append((frame, voiced))
                recent = list(self._history)[-START_FRAMES:]
                if len(recent) == START_FRAMES and all(v for _, v in recent):
                    events.append(self._start(index))
                continue
            if voiced:
                speech_audio.extend(self._tail)
                speech_audio.append(frame)
                self._tail = []
                self._silence_run = 0
                self._last_voiced = index
                continue
            self._tail.append(frame)
            self._silence_run += 1
            if self._silence_run >= self.silence_frames:
                if speech_audio:
                    events.append(VadEvent("audio", 0, np.concatenate(speech_audio)))
                    speech_audio = []
                events.append(self._stop())
        if self.in_speech and speech_audio:
            events.append(VadEvent("audio", 0, np.concatenate(speech_audio)))
        return events

    def _is_speech(self, frame: Samples) -> bool:
        db = _rms_db(frame)
        if self._floor_db is None:
            self._floor_db = max(MIN_FLOOR_DB, db)
        loud = db >= self._floor_db + self._margin_db
        if not self.in_speech:  # frozen during speech: pauses between words are not the noise floor
            if db < self._floor_db:
                self._floor_db = max(MIN_FLOOR_DB, db, self._floor_db - FLOOR_FALL_DB)
            elif not loud:
                self._floor_db += FLOOR_RISE_DB
        # webrtcvad keeps adapting its own noise model, so it sees every frame
        voiced = self._vad.is_speech(frame.tobytes(), SAMPLE_RATE_HZ)
        return bool(voiced and loud)

    def _start(self, index: int) -> VadEvent:
        first = index - START_FRAMES + 1
        start_ms = self._frame_ms(first)
        pad_frames = math.ceil(self.prefix_padding_ms / FRAME_MS)
        frames = list(self._history)[-(START_FRAMES + pad_frames) :]
        self._history.clear()
        self.in_speech = True
        self._silence_run = 0
        self._tail = []
        self._last_voiced = index
        return VadEvent("start", start_ms, np.concatenate([f for f, _ in frames]))

    def _stop(self) -> VadEvent:
        end_index = self._last_voiced
        tail = np.concatenate(self._tail) if self._tail else np.zeros(0, dtype=np.int16)
        self.in_speech = False
        self._tail = []
        self._silence_run = 0
        return VadEvent("stop", self._frame_ms(end_index + 1), tail)

    @property
    def clock_ms(self) -> int:
        """Input-clock position (ms) of the end of the last complete 20 ms frame processed."""
        return self._frame_ms(self._frames_done)
