"""Speech test sets with reference transcripts, for word error rate (WER) checks of recognition.

- :func:`human_set` — 12 recordings of a human speaker (Debian ``asterisk-core-sounds-en-wav``: 16-bit
  mono WAV at 8000 Hz, telephone band) with their transcripts from ``asterisk-core-sounds-en``'s
  ``core-sounds-en.txt.gz``. Installed by ``scripts/install-system-deps.sh``.
- :func:`synthetic_set` — 30 utterances: 10 sentences each spoken by three espeak-ng voices, PCM16 16 kHz.

Every :class:`Utterance` holds PCM16 samples at its own ``rate_hz`` and the reference text;
:func:`normalize_words` is the text normalisation both sides of a WER comparison go through.
"""

from __future__ import annotations

import gzip
import re
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tests.support.speech import synthesize_pcm16

SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

HUMAN_PROMPTS = (
    "all-circuits-busy-now",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
    "conf-extended",
    "conf-invalidpin",
    "conf-leaderhasleft",
    "conf-now-recording",
    "conf-onlyperson",
    "conf-placeintoconf",
    "confbridge-removed",
    "demo-echodone",
    "agent-pass",
)
"""Prompt names of the human set: one or two sentences each, no digits (no number normalisation)."""

SYNTHETIC_SENTENCES = (
    "what is the weather like in paris today",
    "please book a table for two at the italian restaurant",
    "turn on the lights in the kitchen",
    "how long does it take to drive to the airport",
    "can you remind me to call my sister tomorrow morning",
    "i would like to change my flight to next friday",
    "what time does the pharmacy close tonight",
    "play some relaxing music in the living room",
    "send a message to john saying i will be late",
    "how many cups of flour do i need for the cake",
)
SYNTHETIC_VOICES = ("en-us", "en", "en-us+f3")
"""espeak-ng voices of the synthetic set (American male, British male "en", American female variant)."""

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Utterance:
    """One test utterance: ``name``, reference ``text``, PCM16 ``samples`` at ``rate_hz``."""

    name: str
    text: str
    rate_hz: int
    samples: Samples = field(repr=False)

    def pcm_bytes(self) -> bytes:
        return self.samples.astype("<i2").tobytes()


def normalize_words(text: str) -> str:
    """Punctuation and hyphens dropped ("Call-Forward on Busy." → "call forward on busy")."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())


def human_available() -> bool:
    """True when the Debian asterisk sound packages are installed."""
    return TRANSCRIPTS.exists() and all((SOUNDS_DIR / f"{n}.wav").exists() for n in HUMAN_PROMPTS)


def _transcripts() -> dict[str, str]:
    out: dict[str, str] = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            name, sep, text = line.partition(":")
            if sep and not line.startswith(";"):
                out[name.strip()] = text.strip()
    return out


def read_wav(path: Path) -> tuple[Samples, int]:
    """(PCM16 samples, sample rate Hz) of a 16-bit mono WAV file. Raises ValueError for other layouts."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono WAV")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy(), wav.getframerate()


def human_set() -> list[Utterance]:
    """The 12 human recordings (8000 Hz). Raises FileNotFoundError when the packages are missing."""
    texts = _transcripts()
    out = []
    for name in HUMAN_PROMPTS:
        samples, rate = read_wav(SOUNDS_DIR / f"{name}.wav")
        out.append(Utterance(name, texts[name], rate, samples))
    return out


def synthetic_set() -> list[Utterance]:
    """The 30 synthesized utterances (16000 Hz): every sentence in every voice."""
    return [
        Utterance(
            f"{voice}:{i}",
            text,
            16000,
            np.frombuffer(synthesize_pcm16(text, 16000, voice), dtype="<i2").copy(),
        )
        for voice in SYNTHETIC_VOICES
        for i, text in enumerate(SYNTHETIC_SENTENCES)
    ]
