"""Speech recognition with pocketsphinx 5 (en-us model bundled in the wheel: no download).

Decoders are expensive to create (~0.3–0.6 s CPU), so the process keeps a small pool
(:class:`Recognizer`, :func:`get_recognizer`, built on :class:`rtvoice.localrt.decoder_pool.DecoderPool`);
each decoder lives in its own single worker thread, so pocketsphinx never runs on the event loop and a
decoder is never used by two threads. Used for phrase-list agents (the default recognizer is Whisper,
``rtvoice.localrt.whisper_asr``).

An utterance is decoded whole (``full_utt``: the cepstral mean comes from the utterance itself, not
from whatever the decoder heard before; live decoding lost grammar matches and words after digital
silence), at the end of the turn or already at a pause (:class:`rtvoice.localrt.utterance.UtteranceStream`).

Input: PCM16 LE mono **16 kHz** samples. With a phrase list the decoder uses a JSGF grammar of those
phrases (exact on clear speech, RTF ~0.02); without one, the bundled general language model (RTF
~0.2–0.4, poor on synthetic and telephone speech).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pocketsphinx
from pocketsphinx import Decoder

from rtvoice.localrt.confidence import Transcript, snapped_confidence, word_posterior_confidence
from rtvoice.localrt.decoder_pool import DEFAULT_WAIT_S, DecoderPool
from rtvoice.localrt.utterance import UtteranceStream

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
DEFAULT_SEARCH = "_default"
DITHER_SEED = 1  # fixed: the same audio gives the same transcript
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


class _Decoder:
    """One pocketsphinx decoder with the grammars added to it so far (used only on its slot's thread)."""

    def __init__(self) -> None:
        self.dec = Decoder(loglevel="FATAL")
        self.searches: set[str] = {DEFAULT_SEARCH}


def dither(samples: Samples) -> Samples:
    """``samples`` plus ±1 LSB of noise (fixed seed: same audio, same result) as PCM16 LE.

    Digital silence (exact zeros, e.g. a silent lead-in kept as prefix padding) has no spectrum, which
    throws the cepstral features off: a grammar search could then end with no hypothesis at all.
    """
    noise = np.random.default_rng(DITHER_SEED).integers(-1, 2, samples.size)
    return np.clip(samples.astype(np.int32) + noise, -32768, 32767).astype("<i2")


def _decode(d: _Decoder, samples: Samples, search: str, jsgf: str | None, phrases: tuple[str, ...]) -> str:
    """Whole-utterance decode on the decoder's thread; with a grammar, snapped to its closest phrase.
    Returns a :class:`Transcript` carrying the confidence (see :mod:`rtvoice.localrt.confidence`)."""
    if jsgf is not None and search not in d.searches:
        d.dec.add_jsgf_string(search, jsgf)
        d.searches.add(search)
    if d.dec.current_search() != search:
        d.dec.activate_search(search)
    d.dec.start_utt()
    if samples.size:
        d.dec.process_raw(dither(samples).tobytes(), False, True)
    d.dec.end_utt()
    hyp = d.dec.hyp()
    heard = " ".join(hyp.hypstr.split()) if hyp is not None else ""
    snapped = snap_to_phrase(heard, phrases)
    segments = d.dec.seg()
    posterior = word_posterior_confidence(None if segments is None else [(s.word, s.prob) for s in segments])
    return Transcript(snapped, snapped_confidence(posterior, heard, snapped) if phrases else posterior)


class Recognizer:
    """Process-wide pool of up to ``max_decoders`` pocketsphinx decoders (created lazily, then reused).

    ``wait_s``: how long a finished utterance waits for a decoder before RecognizerBusyError.
    """

    name = "pocketsphinx"

    def __init__(self, max_decoders: int = 2, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.pool: DecoderPool[_Decoder] = DecoderPool(_Decoder, max_decoders, "asr")
        self.max_decoders = max_decoders
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._grammars: dict[tuple[str, ...], tuple[str, str | None]] = {}
        self._phrases: dict[str, tuple[str, ...]] = {}

    def prewarm(self, phrases: Sequence[str] | None = None) -> None:
        """Create one decoder now (blocking, ~0.5 s) and build the grammar of ``phrases``."""
        self.pool.prewarm()
        self.search_for(phrases)

    def search_for(self, phrases: Sequence[str] | None) -> tuple[str, str | None]:
        """(search name, JSGF text or None) for a phrase list; the default LM when the list is empty.

        Phrases with words missing from the pronunciation dictionary are dropped with a warning.
        """
        key = tuple(sorted({normalize_phrase(p) for p in phrases or () if normalize_phrase(p)}))
        if not key:
            return DEFAULT_SEARCH, None
        with self._lock:
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
            with self._lock:
                self._phrases[name] = tuple(known)
        with self._lock:
            self._grammars[key] = result
        return result

    def recognize(self, samples: Samples, phrases: Sequence[str] | None = None) -> str:
        """Blocking whole-utterance recognition of 16 kHz PCM16 ``samples``; "" if nothing was recognized.

        Raises RecognizerBusyError when no decoder frees up within ``wait_s``.
        """
        slot = self.pool.acquire_blocking(self.wait_s)
        job = slot.submit(self._job(phrases), samples)
        self.pool.release_when_done(slot, job)
        return str(job.result())

    def _job(self, phrases: Sequence[str] | None) -> Callable[[_Decoder, Samples], str]:
        search, jsgf = self.search_for(phrases)
        return functools.partial(_decode, search=search, jsgf=jsgf, phrases=self.phrases_of(search))

    def phrases_of(self, search: str) -> tuple[str, ...]:
        """The (normalised, in-dictionary) phrases of a grammar search; () for the default LM."""
        with self._lock:
            return self._phrases.get(search, ())

    def stream(self, phrases: Sequence[str] | None = None) -> UtteranceStream[_Decoder]:
        """A new utterance (see :class:`rtvoice.localrt.utterance.UtteranceStream`), decoded whole at its
        end or at a pause. May block briefly on first use of a grammar."""
        return UtteranceStream(self.pool, self._job(phrases), self.wait_s)


_instance: Recognizer | None = None
_instance_lock = threading.Lock()


def get_recognizer() -> Recognizer:
    """The process-wide :class:`Recognizer` (pool of 2 decoders: this machine has 2 cores)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = Recognizer()
        return _instance
