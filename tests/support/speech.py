"""Test speech for every helper's tests: real espeak-ng synthesis (``rtvoice.localrt.tts``), cached.

``synthesize_pcm16("what is the weather today")`` → PCM16 LE mono bytes at 16000 Hz;
``write_wav(path, text)`` → a 16-bit mono WAV with silence around the speech (for Chromium's fake mic).
"""

from __future__ import annotations

import functools
import wave
from pathlib import Path

from rtvoice.localrt.tts import synthesize


def synthesize_pcm16(text: str, sample_rate_hz: int = 16000, voice: str | None = None) -> bytes:
    """``text`` spoken by espeak-ng as PCM16 LE mono bytes at ``sample_rate_hz`` (no added silence).

    Cached per process: the same arguments always return the same bytes.
    """
    return _cached(text, sample_rate_hz, voice)


@functools.lru_cache(maxsize=256)
def _cached(text: str, sample_rate_hz: int, voice: str | None) -> bytes:
    return synthesize(text, sample_rate_hz, voice).astype("<i2").tobytes()


def silence_pcm16(duration_ms: int, sample_rate_hz: int = 16000) -> bytes:
    """``duration_ms`` of digital silence as PCM16 LE mono bytes."""
    return b"\0\0" * (sample_rate_hz * duration_ms // 1000)


def write_wav(
    path: str | Path,
    text: str,
    sample_rate_hz: int = 16000,
    lead_silence_ms: int = 300,
    tail_silence_ms: int = 300,
) -> Path:
    """Write ``text`` as a 16-bit mono WAV at ``sample_rate_hz``, silence before/after; returns the path."""
    pcm = (
        silence_pcm16(lead_silence_ms, sample_rate_hz)
        + synthesize_pcm16(text, sample_rate_hz)
        + silence_pcm16(tail_silence_ms, sample_rate_hz)
    )
    out = Path(path)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(pcm)
    return out
