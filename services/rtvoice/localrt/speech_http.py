"""Speech from any OpenAI-compatible ``POST /v1/audio/speech`` endpoint, streamed as it arrives.

Request (OpenAI audio API): JSON ``{"model", "input", "voice", "response_format": "pcm", "speed"}``;
the answer body is raw PCM16 LE mono at 24000 Hz (:data:`SPEECH_RATE_HZ`), read in chunks while the
server is still synthesizing so the first audio is sent before the whole sentence is done. Blocking
(runs in a worker thread, like the local synthesizers). Failures raise
:class:`~rtvoice.localrt.tts.TtsError` naming the URL and the HTTP status.
"""

from __future__ import annotations

import httpx
import numpy as np

from rtvoice.localrt.tts import ChunkSink, TtsError, Word

SPEECH_RATE_HZ = 24000
READ_BYTES = 4800  # 100 ms of 24 kHz PCM16


def speech_url(url: str) -> str:
    """Accept a base URL (``http://h/v1``) or the full ``…/audio/speech`` URL; return the full URL."""
    url = url.rstrip("/")
    return url if url.endswith("/audio/speech") else url + "/audio/speech"


class HttpSpeech:
    """Client of one speech endpoint. ``model`` is sent as ``model`` (default ``tts-1``); ``api_key`` as
    ``Authorization: Bearer``; ``timeout_s`` bounds connecting and each read."""

    def __init__(
        self, url: str, model: str = "", api_key: str | None = None, timeout_s: float = 20.0
    ) -> None:
        self.url = speech_url(url)
        self.model = model or "tts-1"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    def stream(self, text: str, sink: ChunkSink, voice: str, speed: float = 1.0) -> None:
        """POST ``text`` and pass 24 kHz PCM16 chunks to ``sink`` as they arrive (first one carries the
        whole text as its word). Stops when ``sink`` returns False. Raises :class:`TtsError`."""
        body = {"model": self.model, "input": text, "voice": voice, "response_format": "pcm", "speed": speed}
        words: list[Word] = [(0, len(text))]
        carry = b""
        try:
            with self._client.stream("POST", self.url, json=body) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise TtsError(
                        f"speech endpoint {self.url} answered HTTP {resp.status_code}: {resp.text[:200]}"
                    )
                for data in resp.iter_bytes(READ_BYTES):
                    data, carry = _whole_samples(carry + data)
                    if not data:
                        continue
                    if not sink(np.frombuffer(data, dtype="<i2").astype(np.int16), words):
                        return
                    words = []
        except httpx.HTTPError as exc:
            raise TtsError(f"speech endpoint {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if words:
            raise TtsError(f"speech endpoint {self.url} sent no audio")

    def close(self) -> None:
        self._client.close()


def _whole_samples(data: bytes) -> tuple[bytes, bytes]:
    """Split ``data`` into whole PCM16 samples and the odd trailing byte (kept for the next read)."""
    cut = len(data) - len(data) % 2
    return data[:cut], data[cut:]
