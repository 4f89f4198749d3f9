"""Gemini Live server messages → neutral frames (``GeminiTurnTracker``); every input message is first
validated against ``google.genai.types.LiveServerMessage``."""

from __future__ import annotations

import base64
import json
from typing import Any

from rtvoice.bridge.providers.backlog import MessageBacklog
from rtvoice.bridge.providers.gemini.codec import decode_server_message, duration_ms
from rtvoice.bridge.providers.gemini.translator import GeminiTurnTracker, Step
from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.v1 import frames_pb2 as pb
from tests.support.fake_gemini_wire import validate_server_message

PCM = b"\x10\x00" * 480  # 20 ms at 24 kHz


def feed(tracker: GeminiTurnTracker, msg: dict[str, Any]) -> Step:
    text = json.dumps(msg)
    assert validate_server_message(text) is None, validate_server_message(text)
    return tracker.handle(decode_server_message(text.encode()))


def audio(pcm: bytes = PCM, **extra: Any) -> dict[str, Any]:
    part = {
        "inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm).decode()},
        **extra,
    }
    return {"serverContent": {"modelTurn": {"parts": [part]}}}


def kinds(frames: list[pb.ServerFrame]) -> list[str]:
    return [str(f.WhichOneof("frame")) for f in frames]


def test_whole_turn() -> None:
    t = GeminiTurnTracker(transcripts=True)
    assert feed(t, {"setupComplete": {}}).setup_complete
    out = feed(t, {"serverContent": {"inputTranscription": {"text": "what is "}}}).frames
    out += feed(t, {"serverContent": {"inputTranscription": {"text": "up"}}}).frames
    out += feed(t, audio()).frames
    out += feed(t, {"serverContent": {"outputTranscription": {"text": "All good."}}}).frames
    out += feed(t, {"serverContent": {"generationComplete": True}}).frames
    assert t.busy
    usage = {
        "promptTokenCount": 10,
        "responseTokenCount": 5,
        "totalTokenCount": 15,
        "promptTokensDetails": [
            {"modality": "AUDIO", "tokenCount": 8},
            {"modality": "TEXT", "tokenCount": 2},
        ],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 5}],
    }
    step = feed(t, {"serverContent": {"turnComplete": True}, "usageMetadata": usage})
    out += step.frames
    assert step.turn_complete and not t.busy
    assert kinds(out) == [
        "transcript",
        "transcript",
        "response_started",
        "audio",
        "transcript",
        "transcript",
        "transcript",
        "response_done",
    ]
    user_final, assistant_final = out[5].transcript, out[6].transcript
    assert (user_final.role, user_final.text, user_final.final) == (pb.ROLE_USER, "what is up", True)
    assert (assistant_final.text, assistant_final.item_id) == ("All good.", "gemini_item_1")
    assert out[3].audio.data == PCM and out[3].audio.format.sample_rate_hz == 24000
    done = out[-1].response_done
    assert (done.response_id, done.status) == ("gemini_resp_1", "completed")
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.total_tokens) == (10, 5, 15)
    assert (done.usage.input_audio_tokens, done.usage.output_audio_tokens) == (8, 5)
    assert t.history.replay() == [("user", "what is up"), ("assistant", "All good.")]


def test_interrupted_then_turn_complete() -> None:
    t = GeminiTurnTracker(transcripts=True)
    feed(t, audio())
    feed(t, {"serverContent": {"outputTranscription": {"text": "Once upon"}}})
    out = feed(t, {"serverContent": {"interrupted": True}}).frames
    assert kinds(out) == ["clear_audio"] and out[0].clear_audio.item_id == "gemini_item_1"
    assert feed(t, audio()).frames == []  # late audio of the cut response is dropped
    out = feed(t, {"serverContent": {"turnComplete": True}}).frames
    assert kinds(out) == ["transcript", "response_done"]
    assert (out[1].response_done.status, out[1].response_done.status_reason) == ("cancelled", "turn_detected")
    # [observed] interrupted after turnComplete: clear what the caller may still be playing
    out = feed(t, {"serverContent": {"interrupted": True}}).frames
    assert kinds(out) == ["clear_audio"] and out[0].clear_audio.item_id == "gemini_item_1"


def test_client_interrupt_and_heard_share() -> None:
    t = GeminiTurnTracker(transcripts=True)
    feed(t, audio(PCM * 10))  # 200 ms
    feed(t, {"serverContent": {"outputTranscription": {"text": "one two three four"}}})
    t.client_interrupt()
    t.history.truncate("gemini_item_1", 100 / 200)  # the session's Cut: 100 of 200 ms heard
    assert feed(t, audio()).frames == []
    done = feed(t, {"serverContent": {"turnComplete": True}}).frames[-1].response_done
    assert (done.status, done.status_reason) == ("cancelled", "client_cancelled")
    assert t.history.replay() == [("assistant", "one two t")]  # half of the text: 100 of 200 ms heard


def test_tool_calls_and_cancellation() -> None:
    t = GeminiTurnTracker(transcripts=False)
    msg = {"toolCall": {"functionCalls": [{"id": "fc_1", "name": "get_weather", "args": {"city": "Oslo"}}]}}
    out = feed(t, msg).frames
    assert kinds(out) == ["response_started", "tool_call"]
    assert (out[1].tool_call.call_id, json.loads(out[1].tool_call.arguments_json)) == (
        "fc_1",
        {"city": "Oslo"},
    )
    assert t.busy and t.pending_calls == {"fc_1": "get_weather"}
    out = feed(t, {"toolCallCancellation": {"ids": ["fc_1"]}}).frames
    assert kinds(out) == ["tool_cancellation"] and list(out[0].tool_cancellation.call_ids) == ["fc_1"]
    assert t.pending_calls == {}


def test_connection_lost_closes_the_response_and_withdraws_calls() -> None:
    t = GeminiTurnTracker(transcripts=True)
    feed(t, {"toolCall": {"functionCalls": [{"id": "fc_9", "name": "f", "args": {}}]}})
    out = t.connection_lost()
    assert kinds(out) == ["tool_cancellation", "response_done"]
    assert out[1].response_done.status == "incomplete"
    assert not t.busy


def test_control_messages() -> None:
    t = GeminiTurnTracker(transcripts=True)
    assert feed(t, {"sessionResumptionUpdate": {"newHandle": "", "resumable": False}}).handle is None
    assert feed(t, {"sessionResumptionUpdate": {"newHandle": "h2", "resumable": True}}).handle == "h2"
    assert feed(t, {"goAway": {"timeLeft": "50s"}}).go_away_ms == 50000
    assert feed(t, {"goAway": {}}).go_away_ms == 0
    out = feed(t, {"voiceActivity": {"voiceActivityType": "ACTIVITY_START", "audioOffset": "1.5s"}}).frames
    assert kinds(out) == ["speech_started"] and out[0].speech_started.audio_start_ms == 1500
    out = feed(t, {"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_EOS"}}).frames
    assert kinds(out) == ["speech_stopped"]


def test_thought_parts_and_bad_audio() -> None:
    t = GeminiTurnTracker(transcripts=True)
    thought = {"serverContent": {"modelTurn": {"parts": [{"text": "planning...", "thought": True}]}}}
    assert feed(t, thought).frames == []
    out = feed(t, audio(b"\x01\x02\x03")).frames
    assert kinds(out) == ["error"] and out[0].error.code == "bad_audio" and not out[0].error.fatal
    wrong_rate = {
        "serverContent": {
            "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=16000", "data": "AAAA"}}]}
        }
    }
    assert feed(t, wrong_rate).frames[0].error.code == "bad_audio"


def test_audio_only_modality_has_no_transcripts() -> None:
    t = GeminiTurnTracker(transcripts=False)
    out = feed(t, {"serverContent": {"inputTranscription": {"text": "hi", "finished": True}}}).frames
    out += feed(t, {"serverContent": {"outputTranscription": {"text": "hello"}}}).frames
    out += feed(t, {"serverContent": {"turnComplete": True}}).frames
    assert kinds(out) == ["response_started", "response_done"]
    assert t.history.replay() == [("user", "hi"), ("assistant", "hello")]


def test_decode_errors_and_durations() -> None:
    for raw in (b"\xff\xfe", b"not json", b"[1, 2]"):
        try:
            decode_server_message(raw)
        except RealtimeProtocolError as err:
            assert err.code == "bad_json"
        else:
            raise AssertionError(raw)
    assert (duration_ms("0.25s"), duration_ms("bogus"), duration_ms(None)) == (250, None, None)


def test_backlog_drops_oldest_audio_keeps_control() -> None:
    b = MessageBacklog(max_audio_bytes=100)
    b.add("start")
    assert b.add("a1", 60) == 0
    assert b.add("a2", 60) == 60  # a1 dropped
    b.add("end")
    assert [b.peek()[0] for _ in range(1) if len(b)] == ["start"]
    texts = []
    while len(b):
        texts.append(b.peek()[0])
        b.pop()
    assert texts == ["start", "a2", "end"] and b.audio_bytes == 0 and b.dropped_bytes == 60
