"""Bridge + OpenAI adapter against the fake OpenAI Realtime server, over real gRPC and WebSockets."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np

from rtvoice.core import g711
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import (
    ConverseClient,
    capture_recorders,
    openai_call,
    openai_settings,
    running_bridge,
    session_start,
    utterance,
)
from tests.support.fake_openai import VALID_KEY, FakeOpenAI, Scenario


async def test_spoken_turn_round_trip() -> None:
    recs, factory = capture_recorders()
    async with FakeOpenAI(Scenario()) as fake:
        async with running_bridge(
            openai_settings(), provider_url=fake.url, api_key=VALID_KEY, recorder_factory=factory
        ) as bridge:
            async with ConverseClient(bridge.target) as call:
                ready = await call.start()
                assert ready.WhichOneof("frame") == "ready"
                assert ready.ready.provider == "openai"
                await call.send_audio(utterance())
                done = await call.wait_for("response_done")
                assert done.response_done.status == "completed"
                await call.send(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
                end = await call.wait_for("end")
                assert end.end.reason == pb.END_REASON_CALLER_HANGUP
    assert fake.validation_errors == []
    kinds = call.kinds()
    assert kinds.index("speech_started") < kinds.index("response_started") < kinds.index("response_done")
    audio = call.of_kind("audio")
    assert audio and all(a.format.sample_rate_hz == 16000 for a in audio)
    total_ms = sum(len(a.data) for a in audio) / 32
    assert abs(total_ms - 600) < 25  # 600 ms generated at 24 kHz → ~600 ms at 16 kHz, tail flushed
    assert [a.sequence for a in audio] == list(range(1, len(audio) + 1))
    finals = [t for t in call.of_kind("transcript") if t.final]
    assert {(t.role, t.text) for t in finals} == {
        (pb.ROLE_USER, "what is the weather today"),
        (pb.ROLE_ASSISTANT, "the weather is sunny"),
    }
    update = fake.connections[0].client_events("session.update")[0]["session"]
    assert update["type"] == "realtime"
    assert update["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200
    assert update["audio"]["input"]["transcription"] is not None
    assert fake.connections[0].headers["authorization"] == f"Bearer {VALID_KEY}"
    assert "openai-beta" not in fake.connections[0].headers
    # everything the caller got and sent is in the recorder copy
    (rec,) = recs
    assert [f.SerializeToString() for f in rec.server] == [f.SerializeToString() for f in call.frames]
    assert rec.client[0].WhichOneof("frame") == "start"
    assert sum(1 for f in rec.client if f.WhichOneof("frame") == "audio") == len(utterance()) // 640 + 1
    assert rec.end is not None and rec.end.reason == pb.END_REASON_CALLER_HANGUP
    names = {s.name for s in rec.spans}
    assert {"provider.connect", "response", "session"} <= names
    assert json.loads(rec.start.agent_settings_json)["provider"] == "openai"


def no_errors(call: ConverseClient) -> None:
    assert [(e.code, e.message) for e in call.of_kind("error")] == []


async def test_mulaw_caller_passes_straight_through() -> None:
    start = session_start("g711_mulaw", "g711_mulaw")
    async with openai_call(start=start) as oc:
        pcm8k = utterance(rate=8000)
        mulaw = g711.pcm16_to_ulaw(np.frombuffer(pcm8k, dtype="<i2"))
        await oc.call.send_audio(mulaw, fmt="g711_mulaw")
        await oc.call.wait_for("response_done")
        conn = oc.fake.connections[0]
    no_errors(oc.call)
    assert oc.fake.validation_errors == []
    update = conn.client_events("session.update")[0]["session"]["audio"]
    assert update["input"]["format"] == {"type": "audio/pcmu"}
    assert update["output"]["format"] == {"type": "audio/pcmu"}
    got = b"".join(base64.b64decode(e["audio"]) for e in conn.client_events("input_audio_buffer.append"))
    assert got == mulaw  # byte-identical: no transcoding
    sent = b"".join(base64.b64decode(e["delta"]) for e in conn.sent_events("response.output_audio.delta"))
    heard = b"".join(a.data for a in oc.call.of_kind("audio"))
    assert heard == sent
    assert all(a.format.encoding == pb.AUDIO_ENCODING_G711_MULAW for a in oc.call.of_kind("audio"))


async def test_audio_only_modality_has_no_transcripts() -> None:
    async with openai_call(settings=openai_settings(modalities="audio")) as oc:
        await oc.call.send_audio(utterance())
        await oc.call.wait_for("response_done")
        update = oc.fake.connections[0].client_events("session.update")[0]["session"]
    assert update["audio"]["input"]["transcription"] is None
    assert oc.call.of_kind("transcript") == []
    assert oc.call.of_kind("audio")


async def test_manual_turns_commit_on_end_of_turn() -> None:
    settings = openai_settings(turnDetection={"type": "none"})
    async with openai_call(settings=settings) as oc:
        await oc.call.send_audio(utterance())
        await oc.call.send(pb.ClientFrame(end_of_turn=pb.EndOfTurn()))
        await oc.call.wait_for("response_done")
        conn = oc.fake.connections[0]
    no_errors(oc.call)
    assert conn.client_events("session.update")[0]["session"]["audio"]["input"]["turn_detection"] is None
    types = [e["type"] for e in conn.received]
    assert types.index("input_audio_buffer.commit") < types.index("response.create")
    assert oc.call.of_kind("speech_started") == []


async def test_text_turn() -> None:
    async with openai_call() as oc:
        await oc.call.send(pb.ClientFrame(text=pb.TextInput(text="hello there")))
        await oc.call.wait_for("response_done")
        conn = oc.fake.connections[0]
    create = conn.client_events("conversation.item.create")[0]["item"]
    assert create["role"] == "user" and create["content"] == [{"type": "input_text", "text": "hello there"}]
    assert conn.client_events("response.create")
    assert oc.call.of_kind("audio")


async def test_malformed_caller_frame_is_a_typed_error_not_a_crash() -> None:
    async with openai_call() as oc:
        await oc.call.send(pb.ClientFrame(audio=pb.AudioFrame(data=b"\x01\x02\x03")))
        err = await oc.call.wait_for("error")
        assert err.error.kind == pb.ERROR_KIND_AUDIO_FORMAT
        assert err.error.code == "odd_pcm_length" and not err.error.fatal
        # the format is the session's (fixed at SessionStart); per frame only its length is checked
        await oc.call.send(pb.ClientFrame(audio=pb.AudioFrame(data=b"\0" * 32 * 1500)))
        err2 = await oc.call.wait_for("error", count=2)
        assert err2.error.code == "frame_too_large" and not err2.error.fatal
        await oc.call.send_audio(utterance())
        done = await oc.call.wait_for("response_done")
    assert done.response_done.status == "completed"


async def test_safe_overrides_and_provider_param_overrides() -> None:
    settings = openai_settings(
        providerParamOverrides={
            "audio": {"input": {"noise_reduction": {"type": "near_field"}}},
            "max_output_tokens": 512,
        }
    )
    start = session_start(overrides_json=json.dumps({"voice": "cedar", "instructions": "Be brief."}))
    async with openai_call(settings=settings, start=start) as oc:
        assert oc.ready.ready.voice == "cedar"
        update = oc.fake.connections[0].client_events("session.update")[0]["session"]
    assert update["audio"]["output"]["voice"] == "cedar"
    assert update["instructions"] == "Be brief."
    assert update["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert update["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}  # merged, not replaced
    assert update["max_output_tokens"] == 512
    assert oc.fake.validation_errors == []


async def test_refused_override_and_missing_start_end_cleanly() -> None:
    async with FakeOpenAI() as fake, running_bridge(openai_settings(), provider_url=fake.url) as bridge:
        async with ConverseClient(bridge.target) as call:
            first = await call.start(session_start(overrides_json='{"provider": "gemini"}'))
            assert first.WhichOneof("frame") == "end"
            (err,) = call.of_kind("error")
            assert err.kind == pb.ERROR_KIND_PROTOCOL and err.code == "override_not_allowed" and err.fatal
        async with ConverseClient(bridge.target) as call2:
            await call2.send(pb.ClientFrame(text=pb.TextInput(text="hi")))
            await call2.wait_for("end")
            assert call2.of_kind("error")[0].code == "missing_start"
    assert fake.connections == []


async def test_invalid_key_is_an_auth_error_and_a_clean_end() -> None:
    async with openai_call(api_key="sk-wrong-key-123456") as oc:
        assert oc.ready.WhichOneof("frame") == "end"
        await asyncio.wait_for(oc.call.done.wait(), 5)
    (err,) = oc.call.of_kind("error")
    assert err.kind == pb.ERROR_KIND_AUTH and err.code == "invalid_api_key" and err.fatal
    assert "sk-wrong" not in err.message
    assert oc.call.of_kind("ready") == []
    assert oc.call.error is None  # the RPC ended normally (OK status), not with a transport error
    (rec,) = oc.recorders
    assert rec.end is not None and rec.end.reason == pb.END_REASON_PROVIDER_ERROR
    assert any(s.name == "error" and s.attributes["kind"] == "auth" for s in rec.spans)
