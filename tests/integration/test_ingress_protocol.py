"""Caller protocol v1 over real sockets: a caller WebSocket → ingress → gRPC → the fake bridge."""

from __future__ import annotations

import asyncio
import json

import pytest

from rtvoice.v1 import frames_pb2 as pb
from tests.support.fake_bridge import FakeBridge, tone
from tests.support.ingress import caller, running_ingress, token
from tests.support.speech import silence_pcm16

AGENT = "default/assistant"


@pytest.fixture
async def bridge() -> FakeBridge:
    fb = await FakeBridge().start()
    yield fb  # type: ignore[misc]
    await fb.stop(0)


def frames_of(pcm: bytes, frame_bytes: int = 640) -> list[bytes]:
    return [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]


async def test_happy_path_speech_reply_marks_steer_and_hangup(bridge: FakeBridge) -> None:
    from rtvoice.core.audio import PCM16_16K

    async with (
        running_ingress(bridge.address) as srv,
        caller(srv.ws_url(AGENT), token(subject="tester")) as c,
    ):
        started = await c.start(
            input_format="pcm16_16k",
            output_format="pcm16_24k",
            overrides={"instructions": "be brief"},
            metadata={"app": "test"},
        )
        assert started["protocol"] == "v1"
        assert started["input_format"] == "pcm16_16k" and started["output_format"] == "pcm16_24k"
        assert started["provider"] == "fake" and started["voice"] == "tone"
        assert started["limits"]["max_frame_bytes"] == 32000
        fake = await bridge.next_session()
        st = fake.start
        assert (st.agent_namespace, st.agent_name) == ("default", "assistant")
        assert st.session_id == started["session_id"]
        assert st.input_format.sample_rate_hz == 16000 and st.output_format.sample_rate_hz == 24000
        assert json.loads(st.overrides_json) == {"instructions": "be brief"}
        assert st.metadata["client.app"] == "test" and st.metadata["auth_subject"] == "tester"
        assert not any("rtv1." in v for v in st.metadata.values())

        # "speech" (a loud tone) then quiet: the fake bridge's energy detector answers.
        for frame in frames_of(tone(PCM16_16K, 400) + silence_pcm16(500)):
            await c.send(frame)
            await asyncio.sleep(0.002)
        await c.expect("speech.started")
        await c.expect("speech.stopped")
        await c.expect("response.started", response_id="resp_1")
        user = await c.expect("transcript", role="user")
        assert user["final"] is True
        audio_started = await c.expect("audio.started", item_id="item_1")
        assert audio_started["response_id"] == "resp_1"
        assert audio_started["latency_ms"] is not None and audio_started["latency_ms"] >= 0
        await c.expect("transcript", role="assistant", item_id="item_1")
        done = await c.expect("response.done", response_id="resp_1")
        assert done["status"] == "completed" and done["latency_ms"] == audio_started["latency_ms"]
        assert len(c.audio["item_1"]) == 24000 * 2 * 600 // 1000
        audio_in = fake.frames("audio")
        assert sum(len(f.audio.data) for f in audio_in) == 16000 * 2 * 900 // 1000
        assert [f.audio.sequence for f in audio_in] == list(range(1, len(audio_in) + 1))
        assert all(f.audio.format.sample_rate_hz == 16000 for f in audio_in)

        await c.send({"type": "playback.mark", "item_id": "item_1", "played_ms": 320})
        await c.send(
            {
                "type": "steer",
                "voice": "ash",
                "temperature": 0.7,
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 400},
            }
        )
        await c.send({"type": "interrupt"})
        await c.send({"type": "turn.end"})
        await c.expect("response.done", response_id="resp_2")
        await c.send({"type": "session.end"})
        ended = await c.expect("session.ended")
        assert ended == {"type": "session.ended", "reason": "caller_hangup", "dropped_audio_frames": 0}
        await c.closed()
        assert c.ws.close_code == 1000
        await asyncio.wait_for(fake.closed.wait(), 5)

    mark = fake.frames("playback_mark")[0].playback_mark
    assert (mark.item_id, mark.played_ms) == ("item_1", 320)
    steer = fake.frames("steer")[0].steer
    assert steer.voice == "ash" and abs(steer.temperature - 0.7) < 1e-6 and not steer.HasField("instructions")
    assert steer.turn_detection.type == "server_vad" and steer.turn_detection.silence_duration_ms == 400
    assert fake.frames("interrupt") and fake.frames("end_of_turn")
    assert fake.end_reason == "caller_hangup"


async def test_text_turn_g711_and_events_relayed(bridge: FakeBridge) -> None:
    async def script(session: object) -> None:
        from tests.support.fake_bridge import FakeBridgeSession

        assert isinstance(session, FakeBridgeSession)
        await session.wait_frame("text")
        session.send(pb.ServerFrame(response_started=pb.ResponseStarted(response_id="r1")))
        session.send(
            pb.ServerFrame(
                tool_call=pb.ToolCall(call_id="c1", name="weather", arguments_json='{"city":"Oslo"}')
            )
        )
        session.send(
            pb.ServerFrame(
                tool_result=pb.ToolResult(call_id="c1", name="weather", output="sunny", duration_ms=12)
            )
        )
        session.send(pb.ServerFrame(tool_cancellation=pb.ToolCancellation(call_ids=["c2"])))
        session.send(
            pb.ServerFrame(
                audio=pb.AudioFrame(data=b"\xff" * 160, format=session.start.output_format, item_id="a1")
            )
        )
        session.send(
            pb.ServerFrame(
                audio=pb.AudioFrame(data=b"\xff" * 160, format=session.start.output_format, item_id="a2")
            )
        )
        session.send(pb.ServerFrame(clear_audio=pb.ClearAudio(item_id="a2")))
        session.send(
            pb.ServerFrame(
                error=pb.ErrorFrame(
                    kind=pb.ERROR_KIND_UNSUPPORTED, code="voice_locked", message="voice cannot change now"
                )
            )
        )
        session.send(
            pb.ServerFrame(
                response_done=pb.ResponseDone(
                    response_id="r1", status="completed", usage=pb.Usage(total_tokens=42)
                )
            )
        )

    bridge.script = script
    async with running_ingress(bridge.address) as srv, caller(srv.ws_url(AGENT), token()) as c:
        await c.start(input_format="g711_mulaw", output_format="g711_mulaw")
        await c.send({"type": "text", "text": "what is the weather"})
        call = await c.expect("tool.call")
        assert call == {
            "type": "tool.call",
            "call_id": "c1",
            "name": "weather",
            "arguments": {"city": "Oslo"},
        }
        result = await c.expect("tool.result")
        assert result["duration_ms"] == 12 and "output" not in result
        assert (await c.expect("tool.cancelled"))["call_ids"] == ["c2"]
        first = await c.expect("audio.started", item_id="a1")
        assert first["latency_ms"] is not None
        second = await c.expect("audio.started", item_id="a2")
        assert second["latency_ms"] is None  # latency is per response: its first audio only
        await c.expect("audio.clear", item_id="a2")
        err = await c.expect("error")
        assert err == {
            "type": "error",
            "kind": "unsupported",
            "code": "voice_locked",
            "message": "voice cannot change now",
            "retryable": False,
            "fatal": False,
        }
        done = await c.expect("response.done")
        assert done["usage"]["total_tokens"] == 42
        assert len(c.audio["a1"]) == 160


async def test_bridge_refuses_session(bridge: FakeBridge) -> None:
    bridge.refuse = pb.ErrorFrame(
        kind=pb.ERROR_KIND_AUTH, code="invalid_api_key", message="bad key", fatal=True
    )
    async with running_ingress(bridge.address) as srv, caller(srv.ws_url(AGENT), token()) as c:
        await c.send({"type": "session.start"})
        err = await c.expect("error")
        assert (err["kind"], err["code"], err["fatal"]) == ("auth", "invalid_api_key", True)
        ended = await c.expect("session.ended")
        assert ended["reason"] == "provider_error"
        await c.closed()
