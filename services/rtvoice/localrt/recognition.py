"""Which recognizer and turn detector a session gets, and the interface both recognizers share.

Recognizers (``EngineOptions.stt``): ``whisper`` (Whisper tiny.en, the default: open vocabulary, a phrase
list only biases it), ``pocketsphinx`` (a JSGF grammar of the phrase list: exact on the listed phrases,
or the general language model without one), ``auto`` = pocketsphinx when a phrase list is given, else
Whisper. Turn detectors (``EngineOptions.vad``): ``silero`` (default) or ``webrtc`` (lighter).
Recognizers are process-wide singletons: models load once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from rtvoice.localrt.vad import PAUSE_MS, SpeechSegmenter, VoiceActivityDetector

SttChoice = Literal["auto", "whisper", "pocketsphinx"]
VadChoice = Literal["silero", "webrtc"]
STT_CHOICES: tuple[SttChoice, ...] = ("auto", "whisper", "pocketsphinx")
VAD_CHOICES: tuple[VadChoice, ...] = ("silero", "webrtc")
Samples = npt.NDArray[np.int16]


class SpeechStream(Protocol):
    """One utterance being recognized (16 kHz PCM16 in, transcript out); see the recognizer modules."""

    samples_fed: int

    def feed(self, samples: Samples, speech: bool = True) -> None: ...

    def pause(self) -> None: ...

    async def finish(self) -> str: ...

    def abort(self) -> None: ...


class SpeechRecognizer(Protocol):
    """A process-wide recognizer: ``stream`` per utterance, blocking ``recognize`` for whole clips."""

    name: str

    def prewarm(self, phrases: Sequence[str] | None = None) -> None: ...

    def recognize(self, samples: Samples, phrases: Sequence[str] | None = None) -> str: ...

    def stream(self, phrases: Sequence[str] | None = None) -> SpeechStream: ...


def resolve_stt(stt: str, phrases: Sequence[str]) -> Literal["whisper", "pocketsphinx"]:
    """The local recognizer of a setting (:data:`STT_CHOICES`): ``auto`` → pocketsphinx with phrases,
    else whisper. Raises ``ValueError`` for any other value."""
    if stt == "auto":
        return "pocketsphinx" if phrases else "whisper"
    if stt == "whisper":
        return "whisper"
    if stt == "pocketsphinx":
        return "pocketsphinx"
    raise ValueError(f"local recognizer must be one of {', '.join(STT_CHOICES)}, got {stt!r}")


_lock = threading.Lock()
_recognizers: dict[str, SpeechRecognizer] = {}


def get_speech_recognizer(stt: str, phrases: Sequence[str] = ()) -> SpeechRecognizer:
    """The process-wide recognizer for ``stt`` / ``phrases`` (created on first use, then shared)."""
    kind = resolve_stt(stt, phrases)
    with _lock:
        rec = _recognizers.get(kind)
        if rec is None:
            if kind == "whisper":
                from rtvoice.localrt.whisper_asr import WhisperRecognizer

                rec = WhisperRecognizer()
            else:
                from rtvoice.localrt.asr import get_recognizer

                rec = get_recognizer()
            _recognizers[kind] = rec
        return rec


def make_detector(
    vad: str, threshold: float, prefix_padding_ms: int, silence_duration_ms: int, clock_start_ms: int
) -> SpeechSegmenter:
    """A server_vad turn detector of kind ``vad`` (OpenAI settings; emits ``pause`` events after
    :data:`rtvoice.localrt.vad.PAUSE_MS` of silence). Raises ``ValueError`` for bad settings."""
    if vad == "webrtc":
        return VoiceActivityDetector(
            threshold, prefix_padding_ms, silence_duration_ms, clock_start_ms, PAUSE_MS
        )
    if vad != "silero":
        raise ValueError(f"vad must be one of {', '.join(VAD_CHOICES)}, got {vad!r}")
    from rtvoice.localrt.silero import SileroDetector

    return SileroDetector(threshold, prefix_padding_ms, silence_duration_ms, clock_start_ms, PAUSE_MS)
