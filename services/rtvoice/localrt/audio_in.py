"""The input audio buffer of a session: decoding, the input clock, 16 kHz conversion and VAD.

Appended audio (GA ``input_audio_buffer.append``: PCM16 24 kHz or G.711 8 kHz) is decoded and resampled to
16 kHz PCM16 (what the recognizers and VADs want) with ``rtvoice.core.audio.AudioConverter``. The input
clock (:attr:`InputAudio.clock_ms`) counts every millisecond appended since the session started, so VAD
times are OpenAI's ``audio_start_ms`` / ``audio_end_ms``. The uncommitted buffer is kept at 16 kHz for
``input_audio_buffer.commit`` (capped at :data:`MAX_BUFFER_MS`).
"""

from __future__ import annotations

import base64
import binascii
import collections

import numpy as np
import numpy.typing as npt

from rtvoice.core.audio import PCM16, PCM16_16K, AudioConverter, AudioFormat, decode
from rtvoice.localrt.config import SEMANTIC_SILENCE_MS, JsonObj, RequestError
from rtvoice.localrt.recognition import VadChoice, make_detector
from rtvoice.localrt.vad import SpeechSegmenter, VadEvent

MAX_APPEND_BYTES = 15 * 1024 * 1024
MAX_BUFFER_MS = 120_000
MIN_COMMIT_MS = 100
Samples = npt.NDArray[np.int16]


def decode_append(audio_b64: object, fmt: AudioFormat) -> bytes:
    """Base64 audio of one ``input_audio_buffer.append``; :class:`RequestError` ``invalid_value`` if bad."""
    if not isinstance(audio_b64, str):
        raise RequestError("invalid_value", "'audio' must be a base64 string.", "audio")
    try:
        data = base64.b64decode(audio_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError("invalid_value", f"'audio' is not valid base64: {exc}.", "audio") from exc
    if len(data) > MAX_APPEND_BYTES:
        raise RequestError("invalid_value", "'audio' exceeds 15 MiB per append.", "audio")
    if fmt.encoding == PCM16 and len(data) % 2:
        raise RequestError("invalid_value", "PCM16 audio must have an even number of bytes.", "audio")
    return data


def vad_for(
    turn_detection: JsonObj | None, clock_ms: int, kind: VadChoice = "silero"
) -> SpeechSegmenter | None:
    """The VAD (``kind`` silero|webrtc) for a session's ``turn_detection`` (None = manual);
    semantic_vad maps to a silence length."""
    if turn_detection is None:
        return None
    if turn_detection["type"] == "semantic_vad":
        silence = SEMANTIC_SILENCE_MS[turn_detection.get("eagerness") or "auto"]
        return make_detector(kind, 0.5, 300, silence, clock_ms)
    return make_detector(
        kind,
        float(turn_detection["threshold"]),
        int(turn_detection["prefix_padding_ms"]),
        int(turn_detection["silence_duration_ms"]),
        clock_ms,
    )


class InputAudio:
    """Input side of one session. ``fmt``: the GA input format; ``turn_detection``: the session's;
    ``vad_kind``: the engine's turn detector (silero or webrtc)."""

    def __init__(
        self, fmt: AudioFormat, turn_detection: JsonObj | None, vad_kind: VadChoice = "silero"
    ) -> None:
        self.fmt = fmt
        self.vad_kind: VadChoice = vad_kind
        self._converter = AudioConverter(fmt, PCM16_16K)
        self._bytes_total = 0  # bytes appended in the current format
        self._ms_before_format = 0.0
        self.buffer_start_ms = 0.0
        self._buffer: collections.deque[Samples] = collections.deque()
        self._buffer_samples = 0
        self.vad = vad_for(turn_detection, 0, vad_kind)

    @property
    def clock_ms(self) -> float:
        """Milliseconds of audio appended since the session started (all formats)."""
        return self._ms_before_format + self.fmt.duration_ms(self._bytes_total)

    @property
    def buffer_ms(self) -> float:
        """Milliseconds appended since the last commit or clear."""
        return self.clock_ms - self.buffer_start_ms

    def set_format(self, fmt: AudioFormat) -> None:
        """Switch the input format (the clock continues)."""
        if fmt == self.fmt:
            return
        self._ms_before_format = self.clock_ms
        self._bytes_total = 0
        self.fmt = fmt
        self._converter = AudioConverter(fmt, PCM16_16K)

    def set_turn_detection(self, turn_detection: JsonObj | None) -> None:
        """Replace the VAD (an utterance in progress is dropped by the caller)."""
        self.vad = vad_for(turn_detection, round(self.clock_ms), self.vad_kind)

    def append(self, data: bytes) -> list[VadEvent]:
        """Add decoded bytes of :attr:`fmt`; returns the VAD events they complete (none in manual mode)."""
        self._bytes_total += len(data)
        samples = self._converter.convert(data)
        pcm = decode(samples, PCM16_16K) if samples else np.zeros(0, dtype=np.int16)
        if pcm.size:
            self._buffer.append(pcm)
            self._buffer_samples += pcm.size
            while self._buffer_samples > MAX_BUFFER_MS * 16 and len(self._buffer) > 1:
                self._buffer_samples -= self._buffer.popleft().size
        return self.vad.process(pcm) if self.vad is not None and pcm.size else []

    def take_buffer(self) -> Samples:
        """The uncommitted 16 kHz audio; empties the buffer and starts a new one at the current clock."""
        out = np.concatenate(list(self._buffer)) if self._buffer else np.zeros(0, dtype=np.int16)
        self.clear()
        return out

    def clear(self) -> None:
        """Drop the uncommitted audio (``input_audio_buffer.clear`` and after each commit)."""
        self._buffer.clear()
        self._buffer_samples = 0
        self.buffer_start_ms = self.clock_ms

    def reset_vad(self) -> None:
        """Forget a speech segment in progress (after a manual commit or clear)."""
        if self.vad is not None and self.vad.in_speech:
            self.vad = self.vad.fresh(round(self.clock_ms))
