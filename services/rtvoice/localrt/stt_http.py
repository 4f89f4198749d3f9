"""Recognition by any OpenAI-compatible ``POST /v1/audio/transcriptions`` endpoint (``stt: http``).

Same shape as the local recognizers (:class:`~rtvoice.localrt.recognition.SpeechRecognizer`):
``stream(phrases)`` gives an utterance object with ``feed`` (16 kHz PCM16 samples, never blocks),
``pause`` (nothing to do: the API takes whole files), ``await finish()`` (the transcript, "" for none) and
``abort()``; after ``finish`` its ``confidence`` is 0..1 or None. ``recognize`` is the blocking form.

Request (OpenAI audio API): multipart form with ``file`` (the utterance as a 16 kHz mono PCM16 WAV),
``model`` and ``response_format=json``; a phrase list is sent as ``prompt`` (a hint, as the API
defines it). Answer: ``{"text": ...}``; when the server adds per-token ``logprobs`` or verbose
``segments`` (``avg_logprob``), their mean probability becomes the confidence. Failures raise
:class:`SttError` naming the URL and HTTP status; the session reports them as
``conversation.item.input_audio_transcription.failed``.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from rtvoice.localrt.confidence import logprob_confidence

SAMPLE_RATE_HZ = 16000
Samples = npt.NDArray[np.int16]


class SttError(RuntimeError):
    """The transcription endpoint failed (unreachable, timeout, HTTP error, malformed answer)."""


def transcriptions_url(url: str) -> str:
    """Accept a base URL (``http://h/v1``) or the full ``…/audio/transcriptions`` URL; return the full one."""
    url = url.rstrip("/")
    return url if url.endswith("/audio/transcriptions") else url + "/audio/transcriptions"


def wav_bytes(samples: Samples, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """``samples`` (PCM16 mono) as a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(samples.astype("<i2", copy=False).tobytes())
    return buf.getvalue()


def answer_confidence(answer: dict[str, Any]) -> float | None:
    """Mean token probability from ``logprobs`` (``[{logprob}]``) or ``segments`` (``avg_logprob``)."""
    logprobs = [p.get("logprob") for p in answer.get("logprobs") or [] if isinstance(p, dict)]
    if not logprobs:
        logprobs = [s.get("avg_logprob") for s in answer.get("segments") or [] if isinstance(s, dict)]
    return logprob_confidence(float(v) for v in logprobs if isinstance(v, int | float))


class HttpRecognizer:
    """Client of one transcription endpoint (``model`` default ``whisper-1``; key as Bearer)."""

    name = "http"

    def __init__(
        self, url: str, model: str = "", api_key: str | None = None, timeout_s: float = 30.0
    ) -> None:
        self.url = transcriptions_url(url)
        self.model = model or "whisper-1"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=self._headers)

    def prewarm(self, phrases: Sequence[str] | None = None) -> None:
        """Nothing to load: the endpoint does the work."""

    def stream(self, phrases: Sequence[str] | None = None) -> HttpSttStream:
        """A new utterance; ``phrases`` become the request's ``prompt``."""
        return HttpSttStream(self, " ".join(phrases or ()))

    def _form(self, samples: Samples, prompt: str) -> dict[str, Any]:
        data = {"model": self.model, "response_format": "json", **({"prompt": prompt} if prompt else {})}
        return {"data": data, "files": {"file": ("utterance.wav", wav_bytes(samples), "audio/wav")}}

    async def transcribe(self, samples: Samples, prompt: str = "") -> tuple[str, float | None]:
        """(text, confidence) of 16 kHz PCM16 ``samples``. Raises :class:`SttError`."""
        try:
            resp = await self._client.post(self.url, **self._form(samples, prompt))
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._answer(resp)

    def recognize(self, samples: Samples, phrases: Sequence[str] | None = None) -> str:
        """Blocking transcription of a whole clip (its own connection). Raises :class:`SttError`."""
        form = self._form(samples, " ".join(phrases or ()))
        try:
            resp = httpx.post(self.url, headers=self._headers, timeout=self._timeout_s, **form)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._answer(resp)[0]

    def _unreachable(self, exc: httpx.HTTPError) -> SttError:
        return SttError(f"transcription endpoint {self.url} unreachable: {type(exc).__name__}: {exc}")

    def _answer(self, resp: httpx.Response) -> tuple[str, float | None]:
        if resp.status_code != 200:
            raise SttError(
                f"transcription endpoint {self.url} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            answer = resp.json()
            text = answer["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SttError(f"transcription endpoint {self.url} sent no 'text'") from exc
        if not isinstance(text, str):
            raise SttError(f"transcription endpoint {self.url} sent a non-string 'text'")
        return " ".join(text.split()), answer_confidence(answer)

    async def aclose(self) -> None:
        await self._client.aclose()


class HttpSttStream:
    """One utterance: audio is kept until :meth:`finish` sends it (the API takes whole files)."""

    def __init__(self, recognizer: HttpRecognizer, prompt: str) -> None:
        self._rec = recognizer
        self._prompt = prompt
        self._chunks: list[Samples] = []
        self._closed = False
        self.samples_fed = 0
        self.confidence: float | None = None

    def feed(self, samples: Samples, speech: bool = True) -> None:
        """Keep 16 kHz PCM16 ``samples`` (speech or the silence after it) for the upload."""
        if self._closed or samples.size == 0:
            return
        self.samples_fed += int(samples.size)
        self._chunks.append(samples)

    def pause(self) -> None:
        """Silence began (VAD ``pause``): nothing to do, the whole utterance is sent at :meth:`finish`."""

    async def finish(self) -> str:
        """The transcript ("" for silence). Raises :class:`SttError`, or RuntimeError if already done."""
        if self._closed:
            raise RuntimeError("STT stream already finished")
        self._closed = True
        if not self._chunks:
            return ""
        audio, self._chunks = np.concatenate(self._chunks), []
        text, self.confidence = await self._rec.transcribe(audio, self._prompt)
        return text

    def abort(self) -> None:
        self._closed = True
        self._chunks = []
