"""Speak the sentences of one assistant audio part as GA ``response.output_audio*`` deltas.

:class:`PartSpeaker` synthesizes one sentence at a time on the speech stage's worker thread; every chunk
(~60 ms espeak-ng, 100 ms Piper and HTTP speech) is resampled to the session output format and sent as a
``response.output_audio.delta``, preceded by the ``response.output_audio_transcript.delta`` of the
words whose audio starts in it. :meth:`PartSpeaker.interrupt` (barge-in, ``response.cancel``) stops the
synthesis within one chunk; what was already sent is what the transcript holds.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rtvoice.core.audio import AudioFormat, StreamResampler, encode
from rtvoice.localrt import events as ev
from rtvoice.localrt.speech import Speech
from rtvoice.localrt.tts import Word

log = logging.getLogger(__name__)

Emit = Callable[[ev.Event], None]
_INTERRUPT = object()


@dataclass(frozen=True)
class PartAddress:
    """Where deltas go: ``response_id``, ``item_id``, ``output_index`` (content index is always 0)."""

    response_id: str
    item_id: str
    output_index: int


class PartSpeaker:
    """Speaks sentences into one ``output_audio`` content part (``content`` dict, updated in place).

    ``on_audio(total_ms)`` is called after each audio delta with the audio sent so far (ms).
    """

    def __init__(
        self,
        speech: Speech,
        voice: str | None,
        speed: float,
        fmt: AudioFormat,
        emit: Emit,
        where: PartAddress,
        content: dict[str, Any],
        on_audio: Callable[[float], None],
    ) -> None:
        self._speech = speech
        self._voice = voice
        self._speed = speed
        self._fmt = fmt
        self._emit = emit
        self._where = where
        self._content = content
        self._on_audio = on_audio
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stop = threading.Event()
        self.audio_ms = 0.0

    @property
    def interrupted(self) -> bool:
        return self._stop.is_set()

    def interrupt(self) -> None:
        """Stop the sentence being synthesized and ignore later ones."""
        if not self._stop.is_set():
            self._stop.set()
            self._queue.put_nowait(_INTERRUPT)

    def _synthesize(self, text: str, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: native chunks → output format → the queue (None marks the end)."""
        put = self._queue.put_nowait
        try:
            resampler = StreamResampler(self._speech.sample_rate_hz(self._voice), self._fmt.sample_rate_hz)

            def sink(samples: npt.NDArray[np.int16], words: list[Word]) -> bool:
                if self._stop.is_set():
                    return False
                loop.call_soon_threadsafe(put, (encode(resampler.process(samples), self._fmt), words))
                return True

            self._speech.stream(text, sink, self._voice, self._speed)
            if not self._stop.is_set():
                loop.call_soon_threadsafe(put, (encode(resampler.flush(), self._fmt), []))
        except Exception as exc:  # reported on the loop; the session survives
            loop.call_soon_threadsafe(put, exc)
        finally:
            loop.call_soon_threadsafe(put, None)

    def _say(self, delta: str) -> None:
        if delta:
            self._content["transcript"] += delta
            w = self._where
            self._emit(
                ev.response_output_audio_transcript_delta(w.response_id, w.item_id, w.output_index, 0, delta)
            )

    async def speak(self, text: str) -> bool:
        """Speak one sentence; returns False when synthesis failed (an ``error`` event was sent)."""
        if self._stop.is_set() or not text:
            return True
        w = self._where
        loop = asyncio.get_running_loop()
        loop.run_in_executor(self._speech.executor, self._synthesize, text, loop)
        spoken_to, ok = 0, True
        while True:
            await asyncio.sleep(0)  # Queue.get() does not yield when chunks are waiting: let readers run
            got = await self._queue.get()
            if got is None or got is _INTERRUPT or self._stop.is_set():
                break
            if isinstance(got, Exception):
                log.error("speech synthesis failed: %s", got)
                self._emit(ev.error("tts_failed", f"speech synthesis failed: {got}", type_="server_error"))
                ok = False
                continue
            data, words = got
            for start, length in words:
                if start + length > spoken_to:
                    self._say(text[spoken_to : start + length])
                    spoken_to = start + length
            if data:
                self.audio_ms += self._fmt.duration_ms(len(data))
                self._on_audio(self.audio_ms)
                audio = base64.b64encode(data).decode()
                self._emit(ev.response_output_audio_delta(w.response_id, w.item_id, w.output_index, 0, audio))
        if not self._stop.is_set() and ok and spoken_to < len(text):
            self._say(text[spoken_to:])
        return ok
