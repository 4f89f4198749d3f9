"""How sure a recognizer is of its transcript, as one number 0..1 (the ``confidence`` of a stream).

Responders use it to avoid acting on misheard words (below
:data:`rtvoice.localrt.responder.LOW_CONFIDENCE` a turn counts as not understood). Measured on espeak-ng
speech with pocketsphinx's general language model: a right guess ("oh there" for "hello there") has a
mean word posterior of ~0.8, garbage ("what is dead" for "what is the weather today") 0.24–0.33. In
grammar mode pocketsphinx reports posteriors of ~1.0 even for a partial path through the grammar ("will"
for an utterance that is not in the list), so there the similarity to the phrase it was snapped to
counts as well.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

NON_WORDS = frozenset({"<s>", "</s>", "<sil>"})


class Transcript(str):
    """A transcript (the text itself, so it works wherever a ``str`` does) with the recognizer's
    ``confidence`` 0..1 (None = unknown)."""

    confidence: float | None

    def __new__(cls, text: str, confidence: float | None = None) -> Transcript:
        obj = super().__new__(cls, text)
        obj.confidence = confidence
        return obj


def _word(token: str) -> str:
    return token.split("(", 1)[0]  # pocketsphinx marks alternative pronunciations as word(2)


def word_posterior_confidence(segments: Iterable[tuple[str, float]] | None) -> float | None:
    """Mean posterior probability of the real words of a pocketsphinx segmentation.

    ``segments``: ``(word, posterior 0..1)`` pairs, e.g. ``[(s.word, s.prob) for s in decoder.seg()]``
    (``decoder.seg()`` is None when the search ended without a complete path: pass None); silences,
    sentence marks and fillers (``[NOISE]``, ``++UH++``) are skipped. None when no word was scored.
    """
    probs = [
        min(1.0, max(0.0, p))
        for w, p in segments or ()
        if w not in NON_WORDS and not w.startswith(("[", "+"))
    ]
    return sum(probs) / len(probs) if probs else None


def snapped_confidence(posterior: float | None, heard: str, snapped: str) -> float | None:
    """Grammar mode: ``posterior`` (None = not scored, taken as 1.0) scaled by how much of the phrase
    ``snapped`` the decoder really heard (word-level similarity of ``heard`` to it; 1.0 when they are
    the same). None when nothing was heard."""
    if not heard.strip():
        return None
    heard_words = [_word(w) for w in heard.split()]
    similarity = difflib.SequenceMatcher(None, heard_words, snapped.split()).ratio() if snapped else 0.0
    return (1.0 if posterior is None else posterior) * similarity


def logprob_confidence(logprobs: Iterable[float]) -> float | None:
    """exp(mean log probability): for Whisper's segment ``avg_logprob`` or per-token log probabilities."""
    values = list(logprobs)
    return math.exp(sum(values) / len(values)) if values else None


#: Whisper's own reference thresholds: a decode whose average token log probability is below -1.0 is
#: unreliable, and one whose no-speech probability is above 0.6 heard no speech.
WHISPER_LOGPROB_THRESHOLD = -1.0
WHISPER_NO_SPEECH_THRESHOLD = 0.6


def whisper_confidence(avg_logprob: float, no_speech_prob: float) -> float:
    """Whisper's decode scores mapped onto 0..1 so that 0.5 falls exactly on Whisper's reference
    thresholds (``avg_logprob`` -1.0, ``no_speech_prob`` 0.6): the smaller of the two mapped values.
    ``avg_logprob`` is the length-normalized log probability of the best hypothesis (CTranslate2
    ``return_scores``), ``no_speech_prob`` the probability of the no-speech token (``return_no_speech_prob``).
    Short correct answers ("Yes.") score about 0.55; hallucinations on noise about 0.2."""
    by_logprob = 0.5 * math.exp(avg_logprob - WHISPER_LOGPROB_THRESHOLD)
    by_speech = 1.0 - 0.5 * no_speech_prob / WHISPER_NO_SPEECH_THRESHOLD
    return max(0.0, min(1.0, by_logprob, by_speech))
