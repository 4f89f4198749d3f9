"""One utterance recognized as a whole, started early when the caller pauses (shared by both recognizers).

:class:`UtteranceStream` collects an utterance's 16 kHz PCM16 audio while it is spoken. When the turn
detector reports a pause (silence began, the turn may be over), :meth:`UtteranceStream.pause` decodes the
audio so far on a free decoder of the pool, without waiting. :meth:`UtteranceStream.finish` then returns
that result if no speech came after the pause, else decodes the whole utterance. Whole-utterance decoding
is what Whisper needs, and it makes pocketsphinx more accurate than live decoding (its cepstral mean is
computed over the utterance instead of being carried over from earlier audio).

Decoders come from a :class:`rtvoice.localrt.decoder_pool.DecoderPool` and go back to it from their own
thread when a job ends, so a cancelled or vanished session never keeps one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from rtvoice.localrt.decoder_pool import DecoderPool

T = TypeVar("T")
Samples = npt.NDArray[np.int16]
Job = Callable[[T, Samples], str]
"""``job(decoder, samples) -> transcript``: runs on the decoder's own thread."""


class UtteranceStream(Generic[T]):
    """One utterance; use from one asyncio task. ``job`` decodes on ``pool`` decoders; ``wait_s`` bounds
    the wait for a free decoder at :meth:`finish` (then RecognizerBusyError)."""

    def __init__(self, pool: DecoderPool[T], job: Job[T], wait_s: float) -> None:
        self._pool = pool
        self._job = job
        self._wait_s = wait_s
        self._chunks: list[Samples] = []
        self.samples_fed = 0
        self._speculation: tuple[int, concurrent.futures.Future[Any]] | None = None
        self._closed = False
        self.confidence: float | None = None
        """After :meth:`finish`: the recognizer's confidence 0..1 in the transcript (None = unknown)."""

    def feed(self, samples: Samples, speech: bool = True) -> None:
        """Add 16 kHz samples; ``speech=False`` marks the trailing silence of a turn (not decoded)."""
        if self._closed or not speech or samples.size == 0:
            return
        self._chunks.append(samples)
        self.samples_fed += int(samples.size)

    def audio(self) -> Samples:
        """All speech fed so far (16 kHz PCM16)."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, dtype=np.int16)

    def _submit(self, slot: Any) -> concurrent.futures.Future[Any]:
        job = slot.submit(self._job, self.audio())
        self._pool.release_when_done(slot, job)
        return job

    def pause(self) -> None:
        """Speech may have ended: decode what was said so far if a decoder is free right now."""
        if self._closed or not self.samples_fed:
            return
        if self._speculation is not None and self._speculation[0] == self.samples_fed:
            return
        slot = self._pool.try_acquire()
        if slot is not None:
            self._speculation = (self.samples_fed, self._submit(slot))

    async def finish(self) -> str:
        """The transcript ("" for no speech). Raises RecognizerBusyError when no decoder frees up within
        the bounded wait, RuntimeError when called twice. Cancelling the caller leaks no decoder."""
        if self._closed:
            raise RuntimeError("ASR stream already finished")
        self._closed = True
        spec, self._speculation = self._speculation, None
        if spec is not None and spec[0] == self.samples_fed:
            try:
                return self._result(await asyncio.wrap_future(spec[1]))
            except Exception:  # a failed early decode: decode again below
                pass
        if not self.samples_fed:
            return ""
        slot = await self._pool.acquire(self._wait_s)
        return self._result(await asyncio.wrap_future(self._submit(slot)))

    def _result(self, text: Any) -> str:
        """The job's transcript; its ``confidence`` (when the job gives one) stays on the stream."""
        self.confidence = getattr(text, "confidence", None)
        return str(text)

    def abort(self) -> None:
        """Drop the utterance (barge-in by a clear, session end); a running decode just finishes."""
        self._closed = True
        self._chunks = []
        self._speculation = None
