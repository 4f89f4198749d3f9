"""Recognition quality of the engine's default agent (Whisper tiny.en + silero-vad) through the real
WebSocket path: user-transcript word error rate (WER, ``jiwer``) on human telephone speech (µ-law 8 kHz)
and on espeak-ng speech, and exactness of a phrase-list agent (pocketsphinx grammar)."""

from __future__ import annotations

import jiwer
import pytest

from rtvoice.localrt.options import EngineOptions
from tests.support.localrt import RealtimeTestClient, local_realtime
from tests.support.speech_sets import (
    SYNTHETIC_SENTENCES,
    Utterance,
    human_available,
    human_set,
    normalize_words,
    synthetic_set,
)
from tests.support.spoken_turns import configure, spoken_turn, wire_audio

MAX_WER = 0.15
pytestmark = pytest.mark.slow


async def engine_wer(utts: list[Utterance], options: EngineOptions) -> tuple[float, list[tuple[str, str]]]:
    """(WER, [(reference, hypothesis)]) of the user transcripts, one session per test set."""
    pairs = []
    async with local_realtime(options=options) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await configure(client, wire_audio(utts[0])[0])
        for utt in utts:
            result = await spoken_turn(client, utt)
            pairs.append((normalize_words(utt.text), normalize_words(result.text) or "<nothing>"))
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]), pairs


@pytest.mark.skipif(not human_available(), reason="needs Debian asterisk-core-sounds-en(-wav)")
async def test_default_agent_wer_on_human_telephone_speech() -> None:
    wer, pairs = await engine_wer(human_set(), EngineOptions())
    print(f"human set: WER {wer:.3f}", pairs)
    assert wer <= MAX_WER, pairs


async def test_default_agent_wer_on_synthetic_speech() -> None:
    wer, pairs = await engine_wer(synthetic_set(), EngineOptions())
    print(f"synthetic set: WER {wer:.3f}", pairs)
    assert wer <= MAX_WER, pairs


async def test_phrase_agent_stays_exact() -> None:
    utts = [u for u in synthetic_set() if u.name.startswith("en-us:")]
    options = EngineOptions(phrases=SYNTHETIC_SENTENCES)
    wer, pairs = await engine_wer(utts, options)
    assert wer == 0.0, pairs
