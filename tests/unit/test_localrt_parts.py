"""Unit tests of the offline engine's parts on synthesized speech: VAD, ASR, TTS, responder, config."""

from __future__ import annotations

import numpy as np
import pytest

from rtvoice.localrt.asr import get_recognizer, normalize_phrase, snap_to_phrase
from rtvoice.localrt.chat import chat_completions_url
from rtvoice.localrt.config import RequestError, apply_session_update, default_session
from rtvoice.localrt.responder import NOT_UNDERSTOOD, EchoResponder, Message
from rtvoice.localrt.tts import espeak_voice, synthesize
from rtvoice.localrt.vad import VoiceActivityDetector
from rtvoice.localrt.voices import UnsupportedVoiceError
from tests.support.speech import synthesize_pcm16, write_wav

PHRASES = ["what is the weather today", "hello there", "turn on the lights in the kitchen please"]


def speech(text: str) -> np.ndarray:
    return np.frombuffer(synthesize_pcm16(text), dtype="<i2")


def voiced_span_ms(samples: np.ndarray) -> tuple[float, float]:
    loud = np.nonzero(np.abs(samples) > 200)[0]
    return loud[0] / 16, loud[-1] / 16


@pytest.mark.parametrize("noise", [0.0, 100.0])
@pytest.mark.parametrize("text", PHRASES)
def test_vad_start_and_stop_times(text: str, noise: float) -> None:
    rng = np.random.default_rng(7)
    sp = speech(text)
    lead_ms, clock_ms = 700, 5000
    x = np.concatenate([np.zeros(16 * lead_ms), sp, np.zeros(16 * 1500)])
    x = (x + rng.normal(0, noise, x.size)).astype(np.int16)
    vad = VoiceActivityDetector(
        threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500, clock_start_ms=clock_ms
    )
    events = []
    for i in range(0, x.size, 480):  # 30 ms chunks: not aligned with the 20 ms frames
        events += vad.process(x[i : i + 480])
    marks = [(e.kind, e.ms) for e in events if e.kind != "audio"]
    start, end = voiced_span_ms(sp)
    assert [k for k, _ in marks] == ["start", "stop"]
    assert abs(marks[0][1] - (clock_ms + lead_ms + start)) <= 40
    assert abs(marks[1][1] - (clock_ms + lead_ms + end)) <= 80
    assert events[0].audio.size >= 16 * 300  # prefix padding kept


def test_vad_ignores_silence_and_noise() -> None:
    assert VoiceActivityDetector().process(np.zeros(16000, np.int16)) == []
    # stationary noise (-40 dBFS) from the start: webrtcvad alone calls it speech, the energy gate does not
    noise = np.random.default_rng(3).normal(0, 300, 16000 * 3).astype(np.int16)
    assert VoiceActivityDetector().process(noise) == []


def test_asr_phrase_mode_is_exact() -> None:
    rec = get_recognizer()
    for text in PHRASES:
        padded = np.concatenate([np.zeros(4800, np.int16), speech(text), np.zeros(4800, np.int16)])
        assert rec.recognize(padded, PHRASES) == text
    assert rec.recognize(np.zeros(16000, np.int16), PHRASES) == ""
    assert normalize_phrase("What's the Weather, today?") == "what's the weather today"
    assert snap_to_phrase("what time", ["what time is it", "hello there"]) == "what time is it"
    assert snap_to_phrase("banana split", ["what time is it", "hello there"]) == "banana split"


async def test_asr_incremental_stream() -> None:
    stream = get_recognizer().stream(PHRASES)
    x = speech("hello there")
    for i in range(0, x.size, 1600):
        stream.feed(x[i : i + 1600])
    assert await stream.finish() == "hello there"


def test_tts_rates_and_voices(tmp_path: object) -> None:
    for rate in (8000, 16000, 24000):
        pcm = synthesize("hello there", rate)
        assert 0.5 < pcm.size / rate < 2.0 and np.abs(pcm).max() > 3000
    assert espeak_voice("marin") != espeak_voice("cedar")
    assert espeak_voice(None) == "en-us" and espeak_voice("en-gb") == "en"  # British: bundled "en"
    with pytest.raises(UnsupportedVoiceError):  # never a silent fallback to another voice
        synthesize("hello", 16000, "no-such-voice")


def test_write_wav(tmp_path: pytest.TempPathFactory) -> None:
    import wave

    path = write_wav(tmp_path / "x.wav", "hello there", lead_silence_ms=200, tail_silence_ms=100)  # type: ignore[operator]
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        assert wav.getnframes() == len(synthesize_pcm16("hello there")) // 2 + 16 * 300


async def test_echo_responder() -> None:
    echo = EchoResponder()
    assert await echo.reply([Message("user", "hello there")], "") == "You said: hello there."
    assert await echo.reply([Message("user", "")], "") == NOT_UNDERSTOOD
    assert chat_completions_url("http://h/v1/") == "http://h/v1/chat/completions"
    assert chat_completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"


def test_session_update_merge_and_errors() -> None:
    s = default_session("gpt-realtime")
    new = apply_session_update(
        s,
        {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
        assistant_audio_present=False,
    )
    assert new["audio"]["input"]["turn_detection"]["eagerness"] == "auto"
    assert new["audio"]["output"] == s["audio"]["output"]
    cases = [
        ({"instructions": "x"}, "missing_required_parameter"),
        ({"type": "realtime", "temperature": 0.7}, "unknown_parameter"),
        ({"type": "realtime", "output_modalities": ["audio", "text"]}, "invalid_value"),
        (
            {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 8000}}}},
            "invalid_value",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}},
            },
            "invalid_value",
        ),
    ]
    for update, code in cases:
        with pytest.raises(RequestError) as info:
            apply_session_update(s, update, assistant_audio_present=False)
        assert info.value.code == code
    with pytest.raises(RequestError) as info:
        apply_session_update(
            s, {"type": "realtime", "audio": {"output": {"voice": "ash"}}}, assistant_audio_present=True
        )
    assert info.value.code == "cannot_update_voice"
