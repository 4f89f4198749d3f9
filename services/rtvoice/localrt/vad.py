"""Voice activity detection (turn detection) on 16 kHz PCM16 with OpenAI server_vad semantics.

:class:`SpeechSegmenter` turns per-frame speech/non-speech decisions of a :class:`FrameClassifier` into
:class:`VadEvent`\\ s on the *input-audio clock* (ms of audio appended since the session started, see
OpenAI ``input_audio_buffer.speech_started``):

- ``start``: ``ms`` = where speech began (``audio_start_ms``); ``audio`` = the speech so far preceded by up
  to ``prefix_padding_ms`` of audio (what the user item keeps before the speech).
- ``audio``: more samples of the ongoing utterance (speech and the silence inside it).
- ``pause``: (only when ``pause_ms`` is set) ``pause_ms`` of silence followed the speech: the utterance
  *may* be over. Recognition can start then instead of after the whole ``silence_duration_ms``.
- ``stop``: ``ms`` = where speech ended (``audio_end_ms``), emitted once ``silence_duration_ms`` of silence
  has followed it; ``audio`` = the remaining samples up to that point.

Two classifiers: silero-vad (``rtvoice.localrt.silero``, the default) and webrtcvad with an energy gate
(:class:`VoiceActivityDetector`, the light option). webrtcvad alone marks frames as speech for ~80–120 ms
after the voice fades and takes stationary noise for speech until it adapts, so a frame counts as speech
only if webrtcvad says so *and* its RMS is ``margin_db`` above an adaptive noise floor.
"""

from __future__ import annotations

import abc
import collections
import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import webrtcvad

SAMPLE_RATE_HZ = 16000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000
START_MS = 60  # speech must last this long (frames in a row) to start an utterance: ignores clicks
PAUSE_MS = 64  # silence after which recognition may start speculatively (see ``pause`` events)
MIN_FLOOR_DB = 20.0  # noise floor never below RMS 10 (digital silence would make any click "speech")
FLOOR_RISE_DB = 0.3  # per quiet frame outside speech (15 dB/s): follows rising noise
FLOOR_FALL_DB = 2.0  # per quieter frame outside speech: a short gap does not reset the floor

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class VadEvent:
    """One VAD output: ``kind`` start|audio|pause|stop, ``ms`` on the input clock, 16 kHz ``audio``."""

    kind: Literal["start", "audio", "pause", "stop"]
    ms: int
    audio: Samples = field(repr=False)


class FrameClassifier(Protocol):
    """Decides speech / not speech for fixed-size 16 kHz frames, with state across frames; built from
    an OpenAI ``threshold`` (0–1, already checked)."""

    frame_samples: int

    def is_speech(self, frame: Samples, in_speech: bool) -> bool:
        """``frame``: exactly ``frame_samples`` samples; ``in_speech``: the segmenter's current state."""
        ...


def check_threshold(threshold: float) -> float:
    """``threshold`` if within 0..1 (OpenAI server_vad ``threshold``), else ``ValueError``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within 0..1, got {threshold}")
    return threshold


def margin_db(threshold: float) -> float:
    """Energy a speech frame needs above the noise floor: 6 dB at threshold 0, 12 dB at 0.5, 18 dB at 1."""
    return 6.0 + 12.0 * threshold


def webrtc_mode(threshold: float) -> int:
    """Map an OpenAI ``threshold`` (0–1, higher = needs louder/clearer speech) to webrtcvad mode 0–3."""
    return min(3, int(check_threshold(threshold) * 4))


def _rms_db(frame: Samples) -> float:
    rms = math.sqrt(float(np.mean(frame.astype(np.float64) ** 2))) if frame.size else 0.0
    return 20.0 * math.log10(rms + 1e-9)


class WebrtcClassifier:
    """webrtcvad (mode from ``threshold``) AND an energy gate over an adaptive noise floor; 20 ms frames."""

    frame_samples = FRAME_SAMPLES

    def __init__(self, threshold: float) -> None:
        self._vad = webrtcvad.Vad(webrtc_mode(threshold))
        self._margin_db = margin_db(threshold)
        self._floor_db: float | None = None

    def is_speech(self, frame: Samples, in_speech: bool) -> bool:
        db = _rms_db(frame)
        if self._floor_db is None:
            self._floor_db = max(MIN_FLOOR_DB, db)
        loud = db >= self._floor_db + self._margin_db
        if not in_speech:  # frozen during speech: pauses between words are not the noise floor
            if db < self._floor_db:
                self._floor_db = max(MIN_FLOOR_DB, db, self._floor_db - FLOOR_FALL_DB)
            elif not loud:
                self._floor_db += FLOOR_RISE_DB
        # webrtcvad keeps adapting its own noise model, so it sees every frame
        voiced = self._vad.is_speech(frame.tobytes(), SAMPLE_RATE_HZ)
        return bool(voiced and loud)


class SpeechSegmenter(abc.ABC):
    """Streaming server_vad for one session (not thread-safe; one per session).

    Subclasses build their frame classifier in :meth:`make_classifier`.
    ``threshold`` 0–1 (OpenAI default 0.5), ``prefix_padding_ms`` (default 300), ``silence_duration_ms``
    (default 500): as in OpenAI server_vad. ``clock_start_ms``: input-clock position of the first sample
    fed (turn detection may be switched on mid-session). ``pause_ms``: emit a ``pause`` event after this
    much silence (None: never). Raises ``ValueError`` for out-of-range settings.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        clock_start_ms: int = 0,
        pause_ms: int | None = None,
    ) -> None:
        if prefix_padding_ms < 0 or silence_duration_ms < 0:
            raise ValueError("prefix_padding_ms and silence_duration_ms must be >= 0")
        self._classifier = self.make_classifier(check_threshold(threshold))
        self._n = self._classifier.frame_samples
        self._frame_len_ms = self._n * 1000 // SAMPLE_RATE_HZ
        self._settings = (threshold, prefix_padding_ms, silence_duration_ms)
        self._pause_ms = pause_ms
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_frames = max(1, math.ceil(silence_duration_ms / self._frame_len_ms))
        self._pause_frames = (
            None if pause_ms is None else min(self.silence_frames, max(1, pause_ms // self._frame_len_ms))
        )
        self._start_frames = max(1, math.ceil(START_MS / self._frame_len_ms))
        self._pad_frames = math.ceil(prefix_padding_ms / self._frame_len_ms)
        self._clock_start_ms = clock_start_ms
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_done = 0
        self._history: collections.deque[tuple[Samples, bool]] = collections.deque(
            maxlen=self._pad_frames + self._start_frames
        )
        self.in_speech = False
        self._silence_run = 0
        self._tail: list[Samples] = []  # frames since the last voiced frame (during speech)
        self._last_voiced = 0

    @abc.abstractmethod
    def make_classifier(self, threshold: float) -> FrameClassifier:
        """The frame classifier for ``threshold`` (0–1); each subclass names its own."""

    def fresh(self, clock_start_ms: int) -> SpeechSegmenter:
        """A new detector of the same kind and settings whose clock starts at ``clock_start_ms``."""
        return type(self)(*self._settings, clock_start_ms=clock_start_ms, pause_ms=self._pause_ms)

    def _frame_ms(self, index: int) -> int:
        return self._clock_start_ms + index * self._frame_len_ms

    def process(self, samples: Samples) -> list[VadEvent]:
        """Feed 16 kHz PCM16 samples (any length); returns the events they complete, in order."""
        n = self._n
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_frames = buf.size // n
        self._pending = buf[n_frames * n :].copy()
        events: list[VadEvent] = []
        speech_audio: list[Samples] = []
        for i in range(n_frames):
            frame = buf[i * n : (i + 1) * n]
            index = self._frames_done
            self._frames_done += 1
            voiced = self._classifier.is_speech(frame, self.in_speech)
            if not self.in_speech:
                self._history.append((frame, voiced))
                recent = list(self._history)[-self._start_frames :]
                if len(recent) == self._start_frames and all(v for _, v in recent):
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
            if self._silence_run in (self._pause_frames, self.silence_frames) and speech_audio:
                events.append(VadEvent("audio", 0, np.concatenate(speech_audio)))
                speech_audio = []
            if self._silence_run == self._pause_frames and self._silence_run < self.silence_frames:
                events.append(VadEvent("pause", self._frame_ms(self._last_voiced + 1), _EMPTY))
            if self._silence_run >= self.silence_frames:
                events.append(self._stop())
        if self.in_speech and speech_audio:
            events.append(VadEvent("audio", 0, np.concatenate(speech_audio)))
        return events

    def _start(self, index: int) -> VadEvent:
        start_ms = self._frame_ms(index - self._start_frames + 1)
        frames = list(self._history)[-(self._start_frames + self._pad_frames) :]
        self._history.clear()
        self.in_speech = True
        self._silence_run = 0
        self._tail = []
        self._last_voiced = index
        return VadEvent("start", start_ms, np.concatenate([f for f, _ in frames]))

    def _stop(self) -> VadEvent:
        tail = np.concatenate(self._tail) if self._tail else _EMPTY
        self.in_speech = False
        self._tail = []
        self._silence_run = 0
        return VadEvent("stop", self._frame_ms(self._last_voiced + 1), tail)

    @property
    def clock_ms(self) -> int:
        """Input-clock position (ms) of the end of the last complete frame processed."""
        return self._frame_ms(self._frames_done)


_EMPTY: Samples = np.zeros(0, dtype=np.int16)


class VoiceActivityDetector(SpeechSegmenter):
    """server_vad with the webrtcvad + energy-gate classifier (20 ms frames); the light option.

    ``threshold`` 0–1 (OpenAI default 0.5 → webrtcvad mode 2, energy margin 12 dB).
    """

    def make_classifier(self, threshold: float) -> FrameClassifier:
        return WebrtcClassifier(threshold)
