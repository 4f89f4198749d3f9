"""The engine's speech stage: which synthesizer speaks a given voice, behind one blocking interface.

:class:`LocalSpeech` (``tts: local``) speaks espeak-ng voices with the espeak-ng synthesizer and
``piper:`` voices with Piper (see :mod:`rtvoice.localrt.voices`); :class:`RemoteSpeech` (``tts: http``)
sends every voice to an OpenAI-compatible ``/v1/audio/speech`` endpoint. Both offer
``check_voice`` (raises :class:`~rtvoice.localrt.voices.UnsupportedVoiceError`), ``sample_rate_hz``,
``stream(text, sink, voice, speed)`` (blocking; run in :attr:`executor`) and ``prewarm``.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Protocol

from rtvoice.localrt.piper_tts import get_piper
from rtvoice.localrt.speech_http import SPEECH_RATE_HZ, HttpSpeech
from rtvoice.localrt.tts import TTS_EXECUTOR, ChunkSink, get_synthesizer
from rtvoice.localrt.voices import UnsupportedVoiceError, resolve_voice

log = logging.getLogger(__name__)


class Speech(Protocol):
    """A speech stage (see the module docstring)."""

    executor: concurrent.futures.Executor

    def check_voice(self, voice: str | None) -> None: ...

    def sample_rate_hz(self, voice: str | None) -> int: ...

    def stream(self, text: str, sink: ChunkSink, voice: str | None, speed: float = 1.0) -> None: ...

    def prewarm(self, voice: str | None) -> None: ...

    def close(self) -> None: ...


class LocalSpeech:
    """espeak-ng or Piper, chosen per voice name. Unknown voices raise ``UnsupportedVoiceError``."""

    executor: concurrent.futures.Executor = TTS_EXECUTOR

    def check_voice(self, voice: str | None) -> None:
        resolve_voice(voice)

    def sample_rate_hz(self, voice: str | None) -> int:
        resolved = resolve_voice(voice)
        if resolved.engine == "piper":
            return get_piper().sample_rate_hz(resolved.voice_id)
        return get_synthesizer().sample_rate_hz

    def stream(self, text: str, sink: ChunkSink, voice: str | None, speed: float = 1.0) -> None:
        resolved = resolve_voice(voice)
        if resolved.engine == "piper":
            get_piper().stream(text, sink, resolved.voice_id, speed)
        else:
            get_synthesizer().stream(text, sink, resolved.voice_id, speed)

    def prewarm(self, voice: str | None) -> None:
        """Load what ``voice`` needs now (blocking: espeak ~10 ms, a Piper voice 1–5 s)."""
        self.sample_rate_hz(voice)

    def close(self) -> None:
        return None


class RemoteSpeech:
    """Every voice goes to an OpenAI-compatible speech endpoint (24 kHz PCM16), passed through as named."""

    def __init__(
        self, url: str, model: str = "", api_key: str | None = None, timeout_s: float = 20.0
    ) -> None:
        self._client = HttpSpeech(url, model, api_key, timeout_s)
        self._pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="tts-http")
        self.executor: concurrent.futures.Executor = self._pool

    def check_voice(self, voice: str | None) -> None:
        if voice is not None and not voice.strip():
            raise UnsupportedVoiceError("The voice must not be empty.")

    def sample_rate_hz(self, voice: str | None) -> int:
        return SPEECH_RATE_HZ

    def stream(self, text: str, sink: ChunkSink, voice: str | None, speed: float = 1.0) -> None:
        self._client.stream(text, sink, voice or "alloy", speed)

    def prewarm(self, voice: str | None) -> None:
        return None

    def close(self) -> None:
        self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def prewarm_soon(speech: Speech, voice: str | None) -> None:
    """Load ``voice`` on the stage's worker thread (ahead of the synthesis queued after it); a failure
    is logged here and reported again as ``tts_failed`` by the response that needs the voice."""

    def load() -> None:
        try:
            speech.prewarm(voice)
        except Exception:
            log.exception("cannot load voice %r", voice)

    speech.executor.submit(load)
