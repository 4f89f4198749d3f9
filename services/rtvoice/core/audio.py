"""Audio formats, validation and streaming conversion between caller and provider formats.

Formats are named as in the agent settings: ``pcm16_16k`` (PCM16 LE mono, 16000 Hz, the caller default),
``pcm16_24k`` (24000 Hz, OpenAI's and Gemini's output rate), ``pcm16_8k``, ``g711_mulaw`` and
``g711_alaw`` (8000 Hz, one byte per sample).

:class:`AudioConverter` turns a stream of frames in one format into frames of another with a streaming
``soxr`` resampler chosen for low delay (see :data:`DEFAULT_QUALITY`): a 20 ms frame in gives ~20 ms out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from rtvoice.core import g711
from rtvoice.core.errors import RealtimeAudioFormatError
from rtvoice.v1 import frames_pb2 as pb

PCM16 = "pcm16"
G711_MULAW = "g711_mulaw"
G711_ALAW = "g711_alaw"

_ENCODING_TO_PB = {
    PCM16: pb.AUDIO_ENCODING_PCM16,
    G711_MULAW: pb.AUDIO_ENCODING_G711_MULAW,
    G711_ALAW: pb.AUDIO_ENCODING_G711_ALAW,
}
_PB_TO_ENCODING = {v: k for k, v in _ENCODING_TO_PB.items()}


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Mono audio format: ``encoding`` (``pcm16`` | ``g711_mulaw`` | ``g711_alaw``) at ``sample_rate_hz``."""

    encoding: str
    sample_rate_hz: int

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == PCM16 else 1

    @property
    def bytes_per_ms(self) -> float:
        return self.sample_rate_hz * self.bytes_per_sample / 1000.0

    @property
    def name(self) -> str:
        """The settings name: ``pcm16_16k``, ``g711_mulaw``, ..."""
        if self.encoding == PCM16:
            return f"pcm16_{self.sample_rate_hz // 1000}k"
        return self.encoding

    def duration_ms(self, nbytes: int) -> float:
        """Milliseconds of audio in ``nbytes`` bytes of this format."""
        return nbytes / self.bytes_per_ms

    def bytes_for_ms(self, ms: float) -> int:
        """Whole-sample byte count of ``ms`` milliseconds (rounded down)."""
        samples = int(ms * self.sample_rate_hz / 1000)
        return samples * self.bytes_per_sample

    def to_proto(self) -> pb.AudioFormat:
        return pb.AudioFormat(encoding=_ENCODING_TO_PB[self.encoding], sample_rate_hz=self.sample_rate_hz)

    @classmethod
    def from_proto(cls, msg: pb.AudioFormat) -> AudioFormat:
        """Raises ``RealtimeAudioFormatError`` for an unknown encoding or a rate the encoding forbids."""
        enc = _PB_TO_ENCODING.get(msg.encoding)
        if enc is None:
            raise RealtimeAudioFormatError(f"unknown audio encoding {msg.encoding}", code="unknown_encoding")
        return _checked(enc, msg.sample_rate_hz or (16000 if enc == PCM16 else 8000))

    @classmethod
    def parse(cls, name: str) -> AudioFormat:
        """Parse a settings name (``pcm16_16k``, ``pcm16_24k``, ``g711_mulaw`` ...).

        Raises ``RealtimeAudioFormatError`` naming the accepted formats.
        """
        fmt = FORMATS.get(name)
        if fmt is None:
            raise RealtimeAudioFormatError(
                f"unknown audio format {name!r}; expected one of {', '.join(sorted(FORMATS))}",
                code="unknown_format",
            )
        return fmt


def _checked(encoding: str, rate: int) -> AudioFormat:
    if encoding != PCM16 and rate != 8000:
        raise RealtimeAudioFormatError(f"{encoding} is 8000 Hz only, got {rate} Hz", code="wrong_rate")
    if encoding == PCM16 and rate not in (8000, 16000, 24000, 48000):
        raise RealtimeAudioFormatError(
            f"PCM16 at {rate} Hz is not supported; use 8000, 16000, 24000 or 48000 Hz", code="wrong_rate"
        )
    return AudioFormat(encoding, rate)


FORMATS: dict[str, AudioFormat] = {
    "pcm16_8k": AudioFormat(PCM16, 8000),
    "pcm16_16k": AudioFormat(PCM16, 16000),
    "pcm16_24k": AudioFormat(PCM16, 24000),
    "pcm16_48k": AudioFormat(PCM16, 48000),
    "g711_mulaw": AudioFormat(G711_MULAW, 8000),
    "g711_alaw": AudioFormat(G711_ALAW, 8000),
}

PCM16_16K = FORMATS["pcm16_16k"]
PCM16_24K = FORMATS["pcm16_24k"]


def validate_frame(data: bytes, fmt: AudioFormat, *, max_ms: float = 1000.0) -> None:
    """Check one frame of ``fmt`` audio.

    Raises ``RealtimeAudioFormatError`` with code ``odd_pcm_length`` (PCM16 with an odd byte count),
    ``empty_frame`` or ``frame_too_large`` (longer than ``max_ms``).
    """
    if not data:
        raise RealtimeAudioFormatError("empty audio frame", code="empty_frame")
    if fmt.encoding == PCM16 and len(data) % 2:
        raise RealtimeAudioFormatError(
            f"PCM16 frame has an odd byte length ({len(data)}); samples are 2 bytes little-endian",
            code="odd_pcm_length",
        )
    if fmt.duration_ms(len(data)) > max_ms:
        raise RealtimeAudioFormatError(
            f"audio frame of {fmt.duration_ms(len(data)):.0f} ms exceeds the {max_ms:.0f} ms limit "
            f"({fmt.name}: {fmt.bytes_per_ms:g} bytes/ms)",
            code="frame_too_large",
        )


def decode(data: bytes, fmt: AudioFormat) -> npt.NDArray[np.int16]:
    """Bytes of ``fmt`` to PCM16 samples at ``fmt.sample_rate_hz``."""
    if fmt.encoding == G711_MULAW:
        return g711.ulaw_to_pcm16(data)
    if fmt.encoding == G711_ALAW:
        return g711.alaw_to_pcm16(data)
    return np.frombuffer(data, dtype="<i2")


def encode(samples: npt.NDArray[np.int16], fmt: AudioFormat) -> bytes:
    """PCM16 samples at ``fmt.sample_rate_hz`` to bytes of ``fmt``."""
    if fmt.encoding == G711_MULAW:
        return g711.pcm16_to_ulaw(samples)
    if fmt.encoding == G711_ALAW:
        return g711.pcm16_to_alaw(samples)
    return samples.astype("<i2", copy=False).tobytes()


# Quick cubic interpolation holds ~0.1 ms when upsampling; the low-quality polyphase filter holds ~11 ms
# (24→16 kHz) and avoids aliasing when downsampling. Higher qualities hold 20-80 ms: pure added latency.
DEFAULT_QUALITY = {"up": "QQ", "down": "LQ"}


class StreamResampler:
    """Streaming PCM16 resampler (``soxr.ResampleStream``) that tolerates empty output chunks.

    ``process`` returns whatever the filter releases (possibly nothing); ``flush`` drains the held tail
    (call it at the end of a response) and ``reset`` drops it (barge-in).
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int, quality: str | None = None) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self.quality = quality or DEFAULT_QUALITY["up" if out_rate_hz >= in_rate_hz else "down"]
        self._stream = self._new()

    def _new(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(self.in_rate_hz, self.out_rate_hz, 1, dtype="int16", quality=self.quality)

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(samples)
        return out

    def flush(self) -> npt.NDArray[np.int16]:
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream = self._new()
        return out

    def reset(self) -> None:
        self._stream = self._new()


class AudioConverter:
    """Streaming conversion from ``src`` to ``dst`` format (decode → resample → encode).

    Passes bytes straight through when the formats are equal (e.g. µ-law on both sides).
    ``convert`` may return ``b""`` while the resampler fills; ``flush`` returns the held tail.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat, quality: str | None = None) -> None:
        self.src = src
        self.dst = dst
        self.passthrough = src == dst
        self._resampler = (
            StreamResampler(src.sample_rate_hz, dst.sample_rate_hz, quality)
            if src.sample_rate_hz != dst.sample_rate_hz
            else None
        )

    def convert(self, data: bytes) -> bytes:
        if self.passthrough:
            return data
        samples = decode(data, self.src)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
            if samples.size == 0:
                return b""
        return encode(samples, self.dst)

    def flush(self) -> bytes:
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        return encode(tail, self.dst) if tail.size else b""

    def reset(self) -> None:
        if self._resampler is not None:
            self._resampler.reset()


def resample_once(samples: npt.NDArray[np.int16], in_rate_hz: int, out_rate_hz: int) -> npt.NDArray[np.int16]:
    """One-shot high-quality resampling of a whole buffer (files, synthesis), PCM16 in and out."""
    if in_rate_hz == out_rate_hz:
        return samples
    out: npt.NDArray[np.int16] = soxr.resample(samples, in_rate_hz, out_rate_hz, quality="HQ")
    return out
