"""WAV files for ``rtvoice call``: read any PCM WAV as mono PCM16 at a session rate, write replies, and find
where the speech in a file ends.

Reading uses the stdlib ``wave`` module (integer PCM only: 8-bit unsigned, 16/24/32-bit signed, any
channel count and rate); channels are averaged and the rate converted with
``rtvoice.core.audio.resample_once`` (soxr HQ). Anything else (float or compressed WAV, not a WAV) is
refused with :class:`WavError` naming the expected format.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtvoice.core.audio import resample_once

EXPECTED = "a PCM WAV file (16-bit mono 16000 Hz is best; 8/16/24/32-bit integer PCM at any rate also works)"
SPEECH_WINDOW_MS = 10
SPEECH_THRESHOLD = 0.01  # of full scale (-40 dBFS) in RMS over a 10 ms window


class WavError(ValueError):
    """The file cannot be used; the message names the file and the expected format."""


def _to_int16(raw: bytes, width: int) -> npt.NDArray[np.int16]:
    if width == 1:
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").copy()
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        return (b[:, 1].astype(np.int16) | (b[:, 2].astype(np.int8).astype(np.int16) << 8)).astype(np.int16)
    if width == 4:
        return (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    raise WavError(f"{width * 8}-bit samples are not supported; expected {EXPECTED}")


def read_wav(path: str | Path, sample_rate_hz: int) -> npt.NDArray[np.int16]:
    """Mono PCM16 samples of the WAV at ``path`` converted to ``sample_rate_hz``; raises :class:`WavError`."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError, OSError) as err:
        raise WavError(f"{path}: cannot read it as WAV ({err}); expected {EXPECTED}") from None
    samples = _to_int16(raw[: len(raw) - len(raw) % (width * channels)], width)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if samples.size == 0:
        raise WavError(f"{path}: the file has no audio")
    return resample_once(samples, rate, sample_rate_hz)


def write_wav(path: str | Path, pcm16: bytes, sample_rate_hz: int) -> None:
    """Write PCM16 LE mono bytes as a 16-bit mono WAV."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(pcm16)


def speech_end_sample(samples: npt.NDArray[np.int16], sample_rate_hz: int) -> int | None:
    """Index just after the last non-silent sample: the end of the last 10 ms window whose RMS exceeds
    -40 dBFS, refined to the last sample above that level inside it. ``None`` when the file is silent."""
    win = max(1, sample_rate_hz * SPEECH_WINDOW_MS // 1000)
    n = samples.size // win
    if n == 0:
        return None
    frames = samples[: n * win].astype(np.float64).reshape(n, win)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(rms > SPEECH_THRESHOLD * 32768)
    if loud.size == 0:
        return None
    last = int(loud[-1])
    window = np.abs(frames[last])
    above = np.flatnonzero(window > SPEECH_THRESHOLD * 32768)
    return last * win + (int(above[-1]) + 1 if above.size else win)
