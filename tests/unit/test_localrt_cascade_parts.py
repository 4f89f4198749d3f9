"""Unit tests of the cascade's parts: voices, sentence cutting, chat mapping, stage options and settings."""

from __future__ import annotations

import io
import math
import socket
import subprocess
import sys
import wave

import numpy as np
import pytest
from pydantic import ValidationError

from rtvoice.core.settings import LocalEngine, parse_settings
from rtvoice.localrt.asr import Recognizer, snap_to_phrase
from rtvoice.localrt.chat import ChatResponder, _ToolCallParts, chat_messages, chat_tools
from rtvoice.localrt.confidence import logprob_confidence, snapped_confidence, word_posterior_confidence
from rtvoice.localrt.options import EngineOptions, OptionsError
from rtvoice.localrt.responder import (
    LOW_CONFIDENCE,
    NOT_UNDERSTOOD,
    EchoResponder,
    Message,
    ResponderError,
    ToolCall,
    reply_text,
)
from rtvoice.localrt.sentences import SentenceSplitter
from rtvoice.localrt.speech_http import HttpSpeech, speech_url
from rtvoice.localrt.stt_http import (
    HttpRecognizer,
    SttError,
    answer_confidence,
    transcriptions_url,
    wav_bytes,
)
from rtvoice.localrt.tts import TtsError, get_synthesizer
from rtvoice.localrt.voices import (
    OPENAI_VOICES,
    UnsupportedVoiceError,
    espeak_variants,
    espeak_voices,
    is_valid_voice,
    list_voices,
    resolve_voice,
)
from tests.support.speech import synthesize_pcm16


def test_voice_names_resolve_or_fail_loudly() -> None:
    assert resolve_voice("ballad").voice_id == "en-gb-x-rp+m1"  # British, not a silent US fallback
    assert resolve_voice("en-gb").voice_id == "en" and resolve_voice(None).voice_id == "en-us"
    assert resolve_voice("EN-GB-X-RP+F2").voice_id == "en-gb-x-rp+f2"
    piper = resolve_voice("piper:en_US-joe-medium")
    assert (piper.engine, piper.voice_id) == ("piper", "en_US-joe-medium")
    for bad in ("klingon", "en-us+nosuchvariant", "piper:en_US-nobody-low", ""):
        if bad:
            with pytest.raises(UnsupportedVoiceError, match="--list-voices"):
                resolve_voice(bad)
            assert not is_valid_voice(bad)
    voices = list_voices()
    assert {"marin", "ballad", "en-us", "en-gb", "en-gb-x-rp", "piper:en_US-joe-medium"} <= set(voices)
    assert all(is_valid_voice(v) for v in voices)


def test_every_listed_espeak_voice_and_variant_is_known_to_espeak() -> None:
    lib = get_synthesizer()._lib  # the real library: the directory listing must match what it accepts
    assert all(lib.espeak_SetVoiceByName(v.encode()) == 0 for v in espeak_voices())
    assert lib.espeak_SetVoiceByName(b"en-gb") != 0  # why "en-gb" is an alias of the bundled "en"
    for espeak in OPENAI_VOICES.values():
        base, _, variant = espeak.partition("+")
        assert base in espeak_voices() and (not variant or variant in espeak_variants())
    lib.espeak_SetVoiceByName(b"en-us")


def test_list_voices_command_prints_them() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rtvoice", "local-realtime", "--list-voices"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert {"marin", "en-gb-x-rp", "piper:en_US-joe-medium"} <= set(out)


def test_sentences_are_cut_as_text_streams_in() -> None:
    splitter = SentenceSplitter()
    got: list[str] = []
    for piece in ["The capital", " of France is Paris", ". It is 3.5", " km wide! Re", "ally?", " Yes"]:
        got += splitter.feed(piece)
    assert got == ["The capital of France is Paris. ", "It is 3.5 km wide! ", "Really? "]
    assert splitter.flush() == "Yes" and splitter.flush() == ""
    clauses = SentenceSplitter()  # the first piece may end at a clause, so speech starts sooner
    assert clauses.feed("Well, the capital of France, as you know, is Paris. Yes.") == [
        "Well, the capital of France, ", "as you know, is Paris. ",
    ]  # fmt: skip
    long = SentenceSplitter(max_chars=20)
    assert long.feed("one two three four five six seven") == ["one two three four five six "]


def test_chat_mapping_of_history_tools_and_streamed_tool_calls() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    fn = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    history = [
        Message("user", "weather?", 0.9),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", '{"sky": "clear"}', tool_call_id="call_1"),
    ]
    assert chat_messages(history, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": fn}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
    ]  # fmt: skip
    tools = chat_tools(
        [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}, {"x": 1}]
    )
    assert tools == [{"type": "function", "function": {
        "name": "get_weather", "description": "", "parameters": {"type": "object"}}}]  # fmt: skip
    parts = _ToolCallParts()
    parts.add([{"index": 0, "id": "call_9", "function": {"name": "get_", "arguments": '{"ci'}}])
    parts.add([{"index": 0, "function": {"name": "weather", "arguments": 'ty": "Oslo"}'}}])
    assert parts.calls() == [ToolCall("call_9", "get_weather", '{"city": "Oslo"}')]


async def test_echo_never_repeats_words_heard_with_low_confidence() -> None:
    echo = EchoResponder()
    assert await reply_text(echo, [Message("user", "hello there", 0.3)]) == NOT_UNDERSTOOD
    assert await reply_text(echo, [Message("user", "hello there", 0.8)]) == "You said: hello there."
    assert await reply_text(echo, [Message("user", "hello there", None)]) == "You said: hello there."


def test_http_stage_helpers() -> None:
    assert transcriptions_url("http://h/v1/") == "http://h/v1/audio/transcriptions"
    assert speech_url("http://h/v1/audio/speech") == "http://h/v1/audio/speech"
    assert math.isclose(
        answer_confidence({"text": "x", "logprobs": [{"logprob": math.log(0.5)}] * 2}) or 0, 0.5
    )
    assert math.isclose(answer_confidence({"segments": [{"avg_logprob": math.log(0.25)}]}) or 0, 0.25)
    assert answer_confidence({"text": "x"}) is None
    with wave.open(io.BytesIO(wav_bytes(np.arange(160, dtype=np.int16)))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 160)


def test_engine_options_check_each_stage() -> None:
    assert EngineOptions().llm_kind == "echo" and EngineOptions(chat_url="http://h/v1").llm_kind == "http"
    assert EngineOptions(llm="bundled", chat_url="http://h/v1").llm_kind == "bundled"
    for bad in ({"stt": "http"}, {"tts": "http"}, {"llm": "http"}, {"tts": "espeak"}, {"stt": "vosk"}):
        with pytest.raises(OptionsError):
            EngineOptions(**bad)  # type: ignore[arg-type]


def test_local_engine_settings_shape_and_engine_arguments() -> None:
    spec = parse_settings({"localEngine": {
        "stt": {"kind": "http", "url": "http://stt:9000/v1", "model": "whisper-1"},
        "llm": {"kind": "http", "url": "http://llm:8000/v1", "model": "qwen"},
        "tts": {"kind": "http", "url": "http://tts:8880/v1"},
    }})  # fmt: skip
    args = spec.local_engine.cli_args()
    assert args[args.index("--stt") : args.index("--stt") + 6] == [
        "--stt", "http", "--stt-url", "http://stt:9000/v1", "--stt-model", "whisper-1"
    ]  # fmt: skip
    assert args[args.index("--llm-url") + 1] == "http://llm:8000/v1" and "--tts-url" in args
    legacy = LocalEngine.model_validate({"chatCompletionsUrl": "http://llm:8000/v1", "chatModel": "m"})
    assert (legacy.llm.kind, legacy.llm.url, legacy.llm.model) == ("http", "http://llm:8000/v1", "m")
    assert LocalEngine().llm.kind == "echo" and LocalEngine().tts.kind == "local"
    for bad in (
        {"llm": {"kind": "http"}},
        {"tts": {"kind": "local", "url": "http://x/v1"}},
        {"llm": {"kind": "echo"}, "chatCompletionsUrl": "http://llm/v1"},
        {"tts": {"kind": "piper"}},
    ):
        with pytest.raises(ValidationError):
            LocalEngine.model_validate(bad)


def _decode(text: str, jsgf: str | None) -> tuple[str, list[tuple[str, float]] | None]:
    from pocketsphinx import Decoder

    dec = Decoder(loglevel="FATAL")
    if jsgf is not None:
        dec.add_jsgf_string("phrases", jsgf)
        dec.activate_search("phrases")
    dec.start_utt()
    dec.process_raw(synthesize_pcm16(text), False, True)
    dec.end_utt()
    hyp = dec.hyp()
    segments = dec.seg()
    return (hyp.hypstr if hyp else ""), None if segments is None else [(s.word, s.prob) for s in segments]


def test_recognizer_confidence_separates_heard_from_guessed() -> None:
    """Real pocketsphinx decodes of espeak-ng speech: right answers score high, guesses low."""
    phrases = ["what is the weather today", "will it rain tomorrow"]
    jsgf = "#JSGF V1.0;\ngrammar p;\npublic <p> = " + " | ".join(f"( {p} )" for p in phrases) + " ;\n"
    heard, segs = _decode("what is the weather today", jsgf)
    assert heard == "what is the weather today"
    assert (snapped_confidence(word_posterior_confidence(segs), heard, heard) or 0) >= LOW_CONFIDENCE
    for other in ("open the garage door", "what time is it"):  # not in the list: partial paths
        heard, segs = _decode(other, jsgf)
        snapped = snap_to_phrase(heard, phrases)
        assert (snapped_confidence(word_posterior_confidence(segs), heard, snapped) or 0) < LOW_CONFIDENCE, (
            heard
        )
    heard, segs = _decode("hello there", None)  # general language model
    assert heard and (word_posterior_confidence(segs) or 0) >= LOW_CONFIDENCE, (heard, segs)
    assert word_posterior_confidence([("<s>", 1.0), ("<sil>", 0.9), ("[NOISE]", 0.8)]) is None
    assert logprob_confidence([math.log(0.5)] * 3) == pytest.approx(0.5) and logprob_confidence([]) is None


async def test_unreachable_http_stages_raise_their_typed_errors() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with pytest.raises(TtsError, match=r"speech endpoint .* failed"):
        HttpSpeech(base, timeout_s=2).stream("hello", lambda samples, words: True, "alloy")
    with pytest.raises(SttError, match="unreachable"):
        HttpRecognizer(base, timeout_s=2).recognize(np.zeros(1600, dtype=np.int16))
    chat = ChatResponder(base, "m", timeout_s=2)
    with pytest.raises(ResponderError, match="unreachable"):
        await reply_text(chat, [Message("user", "hi")])
    await chat.aclose()


async def test_pocketsphinx_streams_report_their_confidence() -> None:
    rec = Recognizer(max_decoders=1)
    sure = rec.stream(["what is the weather today", "hello there"])
    sure.feed(np.frombuffer(synthesize_pcm16("hello there"), dtype="<i2"))
    assert await sure.finish() == "hello there"
    assert sure.confidence is not None and sure.confidence >= LOW_CONFIDENCE
    free = rec.stream()  # general language model: some guess, with a posterior-based confidence
    free.feed(np.frombuffer(synthesize_pcm16("book a table for two at seven"), dtype="<i2"))
    await free.finish()
    assert free.confidence is not None and 0.0 <= free.confidence <= 1.0
