"""Speech recognition with pocketsphinx 5 (en-us model bundled in the wheel: no download).

Decoders are expensive to create (~0.3–0.6 s CPU, field notes), so the process keeps a small pool
(:class:`Recognizer`, :func:`get_recognizer`); each decoder lives in its own single worker thread, so
pocketsphinx never runs on the event loop and a decoder is never used by two threads.

An utterance is decoded incrementally: :class:`AsrStream` feeds audio to a decoder while the caller speaks
and :meth:`AsrStream.finish` only ends the utterance, which keeps end-of-turn latency small. When every
decoder is busy, the stream buffers audio and decodes it once a decoder frees up.

Input: PCM16 LE mono **16 kHz** samples (8 kHz gives nothing, field notes). With a phrase list the
decoder uses a JSGF grammar of those phrases (exact on clear speech, RTF ~0.02); without one, the
bundled general language model (RTF ~0.2–0.4, poor on synthetic voices).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pocketsphinx
from pocketsphinx import Decoder

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
DEFAULT_SEARCH = "_default"
Samples = npt.NDArray[np.int16]


@functools.cache
def dictionary_words() -> frozenset[str]:
    """Words of the bundled pronunciation dictionary (``cmudict-en-us.dict``), read once."""
    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    with open(path, encoding="utf-8") as fh:
        return frozenset(line.split(" ", 1)[0].split("(", 1)[0] for line in fh if line.strip())


SNAP_RATIO = 0.6


def snap_to_phrase(hyp: str, phrases: Sequence[str]) -> str:
    """The phrase closest to ``hyp`` (word-level similarity ≥ :data:`SNAP_RATIO`), else ``hyp`` itself.

    pocketsphinx returns its best partial path when the final frame does not complete the grammar
    ("what time" for "what time is it"); with a phrase list only whole phrases are possible answers.
    """
    if not hyp or not phrases or hyp in phrases:
        return hyp
    words = hyp.split()
    best = max(phrases, key=lambda p: difflib.SequenceMatcher(None, words, p.split()).ratio())
    return best if difflib.SequenceMatcher(None, words, best.split()).ratio() >= SNAP_RATIO else hyp


def normalize_phrase(text: str) -> str:
    """Lower-case words separated by single spaces, punctuation dropped ("What's up?" → "what's up")."""
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).replace(" '", " ").split())


class _Slot:
    """One decoder and the single thread that owns it."""

    def __init__(self, index: int) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"asr-{index}")
        self._decoder: Decoder | None = None
        self._searches: set[str] = {DEFAULT_SEARCH}

    def _dec(self) -> Decoder:
        if self._decoder is None:
            self._decoder = Decoder(loglevel="FATAL")
        return self._decoder

    # the methods below run only on this slot's thread
    def start(self, search: str, jsgf: str | None) -> None:
        dec = self._dec()
        if jsgf is not None and search not in self._searches:
            dec.add_jsgf_string(search, jsgf)
            self._searches.add(search)
        if dec.current_search() != search:
            dec.activate_search(search)
        dec.start_utt()

    def feed(self, samples: Samples) -> None:
        self._dec().process_raw(samples.astype("<i2", copy=False).tobytes(), False, False)

    def end(self) -> str:
        dec = self._dec()
        dec.end_utt()
        hyp = dec.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""


class Recognizer:
    """Process-wide pool of up to ``max_decoders`` pocketsphinx decoders (created lazily, then reused)."""

    def __init__(self, max_decoders: int = 2) -> None:
        if max_decoders < 1:
            raise ValueError("max_decoders must be >= 1")
        self.max_decoders = max_decoders
        self._cond = threading.Condition()
        self._free: list[_Slot] = []
        self._created = 0
        self._grammars: dict[tuple[str, ...], tuple[str, str | None]] = {}
        self._phrases: dict[str, tuple[str, ...]] = {}

    def try_acquire(self) -> _Slot | None:
        """A free decoder slot, creating one if under the limit; None when all are busy."""
        with self._cond:
            if self._free:
                return self._free.pop()
            if self._created < self.max_decoders:
                self._created += 1
                return _Slot(self._created)
            return None

    def acquire(self) -> _Slot:
        """Blocking :meth:`try_acquire` (call from a worker thread)."""
        with self._cond:
            while True:
                slot = self.try_acquire()
                if slot is not None:
                    return slot
                self._cond.wait()

    def release(self, slot: _Slot) -> None:
        with self._cond:
            self._free.append(slot)
            self._cond.notify()

    def prewarm(self) -> None:
        """Create one decoder now (blocking, ~0.5 s) so the first utterance does not pay for it."""
        slot = self.acquire()
        try:
            slot.executor.submit(slot._dec).result()
        finally:
            self.release(slot)

    def search_for(self, phrases: Sequence[str] | None) -> tuple[str, str | None]:
        """(search name, JSGF text or None) for a phrase list; the default LM when the list is empty.

        Phrases with words missing from the pronunciation dictionary are dropped with a warning.
        """
        key = tuple(sorted({normalize_phrase(p) for p in phrases or () if normalize_phrase(p)}))
        if not key:
            return DEFAULT_SEARCH, None
        with self._cond:
            cached = self._grammars.get(key)
        if cached is not None:
            return cached
        vocab = dictionary_words()
        known = [p for p in key if all(w in vocab for w in p.split())]
        for p in set(key) - set(known):
            log.warning("phrase %r has words outside the pocketsphinx dictionary; ignored", p)
        if not known:
            result: tuple[str, str | None] = (DEFAULT_SEARCH, None)
        else:
            name = "g_" + hashlib.sha1("\n".join(known).encode()).hexdigest()[:16]
            body = " | ".join(f"( {p} )" for p in known)
            result = (name, f"#JSGF V1.0;\ngrammar phrases;\npublic <phrase> = {body} ;\n")
            with self._cond:
                self._phrases[name] = tuple(known)
        with self._cond:
            self._grammars[key] = result
        return result

    def recognize(self, samples: Samples, phrases: Sequence[str] | None = None) -> str:
        """Blocking whole-utterance recognition of 16 kHz PCM16 ``samples``; "" if nothing was recognized."""
        search, jsgf = self.search_for(phrases)
        slot = self.acquire()
        try:
            slot.executor.submit(slot.start, search, jsgf).result()
            slot.executor.submit(slot.feed, samples).result()
            return snap_to_phrase(slot.executor.submit(slot.end).result(), self.phrases_of(search))
        finally:
            self.release(slot)

    def phrases_of(self, search: str) -> tuple[str, ...]:
        """The (normalised, in-dictionary) phrases of a grammar search; () for the default LM."""
        with self._cond:
            return self._phrases.get(search, ())

    def stream(self, phrases: Sequence[str] | None = None) -> AsrStream:
        """A new incremental utterance (see :class:`AsrStream`). May block briefly on first grammar use."""
        return AsrStream(self, *self.search_for(phrases))


class AsrStream:
    """One utterance decoded while it is spoken. Use from one asyncio task; not thread-safe itself.

    ``feed`` never blocks (audio goes to the decoder thread, or is buffered while all decoders are busy);
    ``await finish()`` returns the transcript (lower-case words, "" for none); ``abort()`` drops it.
    """

    def __init__(self, recognizer: Recognizer, search: str, jsgf: str | None) -> None:
        self._rec = recognizer
        self._search = search
        self._jsgf = jsgf
        self._slot: _Slot | None = None
        self._buffer: list[Samples] = []
        self._last: concurrent.futures.Future[Any] | None = None
        self._closed = False
        self.samples_fed = 0
        self._take_slot(recognizer.try_acquire())

    def _take_slot(self, slot: _Slot | None) -> None:
        if slot is None:
            return
        self._slot = slot
        slot.executor.submit(slot.start, self._search, self._jsgf)
        for chunk in self._buffer:
            self._last = slot.executor.submit(slot.feed, chunk)
        self._buffer = []

    def feed(self, samples: Samples) -> None:
        """Queue 16 kHz PCM16 samples for decoding."""
        if self._closed or samples.size == 0:
            return
        self.samples_fed += int(samples.size)
        if self._slot is None:
            self._buffer.append(samples)
            self._take_slot(self._rec.try_acquire())
        else:
            self._last = self._slot.executor.submit(self._slot.feed, samples)

    async def finish(self) -> str:
        """End the utterance and return its transcript. Raises RuntimeError if already finished/aborted."""
        if self._closed:
            raise RuntimeError("ASR stream already finished")
        self._closed = True
        loop = asyncio.get_running_loop()
        if self._slot is None:
            self._take_slot(await loop.run_in_executor(None, self._rec.acquire))
        slot = self._slot
        assert slot is not None
        try:
            hyp = await asyncio.wrap_future(slot.executor.submit(slot.end))
            return snap_to_phrase(hyp, self._rec.phrases_of(self._search))
        finally:
            self._slot = None
            self._rec.release(slot)

    def abort(self) -> None:
        """Drop the utterance (barge-in of the user by a clear, session end); frees the decoder."""
        if self._closed:
            return
        self._closed = True
        slot, self._slot = self._slot, None
        self._buffer = []
        if slot is not None:
            fut = slot.executor.submit(slot.end)
            fut.add_done_callback(lambda _f: self._rec.release(slot))


_instance: Recognizer | None = None
_instance_lock = threading.Lock()


def get_recognizer() -> Recognizer:
    """The process-wide :class:`Recognizer` (pool of 2 decoders: this machine has 2 cores)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = Recognizer()
        return _instance
