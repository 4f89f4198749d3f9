"""GeminiProvider through the provider interface against the fake Gemini Live server (real sockets).

Every client message the provider sends and every message the fake emits is validated against the
google-genai live types inside the fake (``fake.violations`` must stay empty).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from rtvoice.bridge.audio_paths import CallerAudioIn
from rtvoice.bridge.barge_in import Cut
from rtvoice.bridge.providers.gemini import GeminiProvider
from rtvoice.core.audio import PCM16_16K
from rtvoice.core.errors import (
    RealtimeAudioFormatError,
    RealtimeAuthError,
    RealtimeProtocolError,
    RealtimeProviderError,
)
from rtvoice.core.settings import AgentSettings, deep_merge, parse_settings
from rtvoice.v1 import frames_pb2 as pb
from tests.support.fake_gemini import (
    INTERNAL,
    INVALID_ARGUMENT,
    QUOTA,
    FakeGeminiServer,
    FakeToolCall,
    FakeTurn,
)
from tests.support.gemini_calls import FrameCollector, eventually, speak
from tests.support.speech import silence_pcm16, synthesize_pcm16

pytestmark = pytest.mark.timeout(60)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "endpoint": "http://127.0.0.1:9/weather",
}


def agent(**extra: Any) -> AgentSettings:
    base: dict[str, Any] = {
        "provider": "gemini",
        "voice": "Puck",
        "instructions": "You are a test agent. Answer briefly.",
        "turnDetection": {"type": "server_vad", "silenceDurationMs": 300},
        "tools": [WEATHER_TOOL],
    }
    return parse_settings(deep_merge(base, extra))


class Call:
    """A connected provider plus its frame collector."""

    def __init__(self, provider: GeminiProvider) -> None:
        self.p = provider
        self.col = FrameCollector(provider.events())

    async def close(self) -> None:
        await self.p.close()
        await self.col.finish()


async def open_call(
    fake: FakeGeminiServer, settings: AgentSettings | None = None, key: str = "test-key"
) -> Call:
    provider = GeminiProvider(settings or agent(), key, base_url=fake.url)
    await provider.connect()
    return Call(provider)


@pytest.fixture
async def closing() -> AsyncIterator[list[Call]]:
    calls: list[Call] = []
    yield calls
    for c in calls:
        await c.close()


def done_frames(col: FrameCollector) -> list[pb.ResponseDone]:
    return [f.response_done for f in col.of("response_done")]


async def test_spoken_turn_with_both_transcripts(closing: list[Call]) -> None:
    reply = "hello there, the weather is sunny"
    script = [FakeTurn(reply, user_transcript="what is the weather today")]
    async with FakeGeminiServer(script, setup_delay_s=0.2) as fake:
        provider = GeminiProvider(agent(), "test-key", base_url=fake.url)
        # caller audio arrives before setupComplete: it must be held back, not sent early
        speaking = asyncio.create_task(speak(provider.send_audio, "what is the weather today"))
        await provider.connect()
        call = Call(provider)
        closing.append(call)
        sent = await speaking
        done = await call.col.wait_kind("response_done")
        await eventually(lambda: fake.audio_bytes_in == sent)

        assert done.response_done.status == "completed"
        assert done.response_done.usage.output_tokens > 0
        assert call.col.transcript(pb.ROLE_USER, final=True) == ["what is the weather today"]
        assert call.col.transcript(pb.ROLE_ASSISTANT, final=True) == [reply]
        assert "".join(call.col.transcript(pb.ROLE_ASSISTANT, final=False)) == reply
        kinds = call.col.kinds()
        assert kinds.index("response_started") < kinds.index("audio") < kinds.index("response_done")
        assert call.col.audio_bytes == fake.audio_bytes_out == len(synthesize_pcm16(reply, 24000))
        assert {f.audio.item_id for f in call.col.of("audio")} == {"gemini_item_1"}
        assert all(f.audio.format.sample_rate_hz == 24000 for f in call.col.of("audio"))

        setup = fake.connections[0].setup
        assert setup["model"].startswith("models/")
        assert setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"] == {
            "voiceName": "Puck"
        }
        assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
        assert setup["systemInstruction"] == {"parts": [{"text": "You are a test agent. Answer briefly."}]}
        assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}
        assert setup["sessionResumption"] == {}
        assert "slidingWindow" in setup["contextWindowCompression"]
        assert setup["tools"][0]["functionDeclarations"][0]["parameters"]["type"] == "OBJECT"
        assert fake.connections[0].api_key == "test-key"
        assert fake.violations == []


async def test_barge_in_via_interrupted(closing: list[Call]) -> None:
    story = (
        "once upon a time there was a small robot who liked to talk for a very long time about the weather"
    )
    script = [FakeTurn(story, user_transcript="tell me a story"), FakeTurn("okay", user_transcript="stop")]
    async with FakeGeminiServer(script, realtime_factor=2.0) as fake:
        call = await open_call(fake)
        closing.append(call)
        await speak(call.p.send_audio, "tell me a story")
        # Cut in once the first words are both heard and transcribed: a cut before any transcription
        # leaves nothing of the story to compare with (the turn then has no final transcript).
        await eventually(lambda: bool(call.col.transcript(pb.ROLE_ASSISTANT, final=False)))
        await speak(call.p.send_audio, "stop")
        clear = await call.col.wait_kind("clear_audio")
        await eventually(lambda: len(done_frames(call.col)) == 2)

        first, second = done_frames(call.col)
        assert clear.clear_audio.item_id == "gemini_item_1"
        assert (first.status, first.status_reason) == ("cancelled", "turn_detected")
        assert second.status == "completed"
        item1 = sum(len(f.audio.data) for f in call.col.of("audio") if f.audio.item_id == "gemini_item_1")
        assert 0 < item1 < len(synthesize_pcm16(story, 24000))
        assert call.col.audio_bytes == fake.audio_bytes_out
        heard = call.col.transcript(pb.ROLE_ASSISTANT, final=True)[0]
        assert story.startswith(heard) and len(heard) < len(story)
        # no truncate on Gemini: an explicit interrupt sends nothing
        before = len(fake.connections[0].messages)
        await call.p.interrupt(Cut("gemini_item_2", 100, 200))
        await call.p.send_audio(silence_pcm16(20))  # a barrier: messages arrive in order
        await eventually(lambda: len(fake.connections[0].messages) > before)
        assert len(fake.connections[0].messages) == before + 1
        assert fake.violations == []


async def test_tool_call_and_cancelled_tool_call(closing: list[Call]) -> None:
    script = [
        FakeTurn(
            "it is sunny in Oslo", "weather in Oslo", tool_call=FakeToolCall("get_weather", {"city": "Oslo"})
        ),
        FakeTurn("unused", "and in Bergen", tool_call=FakeToolCall("get_weather", {"city": "Bergen"})),
        FakeTurn("all right", "never mind"),
    ]
    async with FakeGeminiServer(script) as fake:
        call = await open_call(fake)
        closing.append(call)
        await speak(call.p.send_audio, "weather in Oslo")
        tc = (await call.col.wait_kind("tool_call")).tool_call
        assert (tc.name, json.loads(tc.arguments_json)) == ("get_weather", {"city": "Oslo"})
        await call.p.send_tool_result(pb.ToolResult(call_id=tc.call_id, name=tc.name, output='{"tempC": 21}'))
        await call.col.wait_kind("response_done")
        assert fake.connections[0].tool_responses == [
            {"id": tc.call_id, "name": "get_weather", "response": {"output": {"tempC": 21}}}
        ]

        mark = len(call.col.frames)
        await speak(call.p.send_audio, "and in Bergen")
        tc2 = (await call.col.wait_kind("tool_call", start=mark)).tool_call
        await speak(call.p.send_audio, "never mind")  # barge-in while the call is pending
        cancel = (await call.col.wait_kind("tool_cancellation", start=mark)).tool_cancellation
        assert list(cancel.call_ids) == [tc2.call_id]
        # a result that arrives after the cancellation is not sent (the server would close 1008)
        await call.p.send_tool_result(pb.ToolResult(call_id=tc2.call_id, name=tc2.name, output="late"))
        await eventually(lambda: len(done_frames(call.col)) == 3)
        assert [d.status for d in done_frames(call.col)] == ["completed", "cancelled", "completed"]
        assert len(fake.connections) == 1 and len(fake.connections[0].tool_responses) == 1
        assert fake.violations == []


async def test_go_away_mid_call_resumes_without_losing_audio(closing: list[Call]) -> None:
    script = [
        FakeTurn("the first answer is forty two", "first question", go_away_ms=20000),
        FakeTurn("the second answer is seven", "second question"),
    ]
    async with FakeGeminiServer(script) as fake:
        call = await open_call(fake)
        closing.append(call)

        async def caller() -> int:
            sent = await speak(call.p.send_audio, "first question", tail_silence_ms=1500, speed=5)
            return sent + await speak(call.p.send_audio, "second question", speed=5)

        sent = await caller()
        await eventually(lambda: len(done_frames(call.col)) == 2)
        await eventually(lambda: fake.audio_bytes_in == sent)

        assert [d.status for d in done_frames(call.col)] == ["completed", "completed"]
        assert len(fake.connections) == 2
        old, new = fake.connections
        session = fake.sessions[0]
        assert len(fake.sessions) == 1 and new.session is session
        assert new.resumed_handle is not None and new.resumed_handle in session.handles
        assert old.close_code == 1000  # the client closed first, before the 1011 deadline
        assert new.client_content_count == 0  # resumed: history is not replayed
        assert session.history == [
            ("user", "first question"),
            ("model", "the first answer is forty two"),
            ("user", "second question"),
            ("model", "the second answer is seven"),
        ]
        assert fake.audio_bytes_in == sent  # caller audio: nothing lost across the reconnect
        assert call.col.audio_bytes == fake.audio_bytes_out  # agent audio: nothing lost either
        assert call.p.stats.reconnect_reasons == ["go_away"]
        assert not call.col.of("error")
        assert fake.violations == []
        print(f"goAway reconnect gap: {call.p.stats.reconnect_gaps_ms[0]:.1f} ms")


async def test_unexpected_close_resumes_with_handle(closing: list[Call]) -> None:
    async with FakeGeminiServer([FakeTurn("one", "first"), FakeTurn("two", "second")]) as fake:
        call = await open_call(fake)
        closing.append(call)
        await speak(call.p.send_audio, "first")
        await call.col.wait_kind("response_done")
        await fake.drop(*INTERNAL)
        await eventually(lambda: len(fake.open_connections()) == 1 and len(fake.connections) == 2)
        await speak(call.p.send_audio, "second")
        await eventually(lambda: len(done_frames(call.col)) == 2)
        assert fake.connections[1].resumed_handle is not None
        assert fake.connections[1].client_content_count == 0
        assert call.p.stats.reconnect_reasons == ["connection_lost"]
        assert fake.violations == []


async def test_without_handle_history_is_replayed_as_text(closing: list[Call]) -> None:
    async with FakeGeminiServer([FakeTurn("one two three", "first")], issue_handles=False) as fake:
        call = await open_call(fake)
        closing.append(call)
        await speak(call.p.send_audio, "first")
        await call.col.wait_kind("response_done")
        await fake.drop(1000, "")
        await eventually(lambda: len(fake.connections) == 2 and bool(fake.connections[1].messages))
        replay = fake.connections[1].messages[1]["clientContent"]
        assert replay == {
            "turns": [
                {"role": "user", "parts": [{"text": "first"}]},
                {"role": "model", "parts": [{"text": "one two three"}]},
            ],
            "turnComplete": False,
        }
        assert fake.connections[1].resumed_handle is None
        assert fake.violations == []


async def test_steer_reconnects_with_new_voice_after_the_turn(closing: list[Call]) -> None:
    reply = "this answer is long enough to steer while it plays"
    async with FakeGeminiServer(
        [FakeTurn(reply, "hi"), FakeTurn("second", "again")], realtime_factor=1.5
    ) as fake:
        call = await open_call(fake)
        closing.append(call)
        await speak(call.p.send_audio, "hi")
        await call.col.wait_kind("audio")
        await call.p.steer(pb.SteerFrame(voice="Kore", temperature=0.4))
        assert len(fake.connections) == 1  # deferred until turnComplete
        await call.col.wait_kind("response_done")
        await eventually(lambda: len(fake.open_connections()) == 1 and len(fake.connections) == 2)
        old, new = fake.connections
        assert old.audio_bytes_out == len(synthesize_pcm16(reply, 24000))  # the turn was not cut
        assert old.close_code == 1000
        gen = new.setup["generationConfig"]
        assert gen["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Kore"
        assert gen["temperature"] == pytest.approx(0.4)
        assert new.resumed_handle in fake.sessions[0].handles
        await speak(call.p.send_audio, "again")
        await eventually(lambda: len(done_frames(call.col)) == 2)
        assert call.p.stats.reconnect_reasons == ["steer"]
        assert fake.violations == []


async def test_bad_key_is_a_typed_error() -> None:
    async with FakeGeminiServer() as fake:
        provider = GeminiProvider(agent(), "wrong-key", base_url=fake.url)
        with pytest.raises(RealtimeAuthError) as info:
            await provider.connect()
        assert info.value.code == "invalid_api_key" and not info.value.retryable
        assert "wrong-key" not in info.value.message
        await eventually(lambda: fake.connections[0].close_code == 1007)
        await provider.close()
        col = FrameCollector(provider.events())
        await col.finish()
        assert col.kinds() == ["end"]
        assert fake.violations == []


async def test_unknown_model_is_not_retryable() -> None:
    async with FakeGeminiServer(models=("models/gemini-live-known",)) as fake:
        provider = GeminiProvider(agent(model="gemini-unknown"), "test-key", base_url=fake.url)
        with pytest.raises(RealtimeProviderError) as info:
            await provider.connect()
        assert (info.value.code, info.value.retryable) == ("model_not_found", False)
        assert fake.connections[0].setup["model"] == "models/gemini-unknown"


@pytest.mark.parametrize(
    ("close", "code", "reconnects"),
    [(INVALID_ARGUMENT, "invalid_argument", 0), (INTERNAL, "quota_exceeded", 1)],
)
async def test_fatal_close_mid_session_ends_cleanly(
    close: tuple[int, str], code: str, reconnects: int, closing: list[Call]
) -> None:
    async with FakeGeminiServer() as fake:
        call = await open_call(fake)
        closing.append(call)
        fake.close_next_setup = [QUOTA]  # the resume attempt after 1011 hits the quota
        await fake.drop(*close)
        end = await call.col.wait_kind("end")
        err = call.col.of("error")[-1].error
        assert (err.code, err.fatal, err.kind) == (code, True, pb.ERROR_KIND_PROVIDER)
        assert end.end.reason == pb.END_REASON_PROVIDER_ERROR
        await call.col.finish()
        assert call.col.done and len(fake.connections) == 1 + reconnects
        await call.p.send_audio(silence_pcm16(20))  # after the end: ignored, no crash


async def test_manual_turns_use_activity_start_and_end(closing: list[Call]) -> None:
    async with FakeGeminiServer([FakeTurn("manual reply", "push to talk")]) as fake:
        call = await open_call(fake, agent(turnDetection={"type": "none"}))
        closing.append(call)
        await speak(call.p.send_audio, "push to talk", tail_silence_ms=100)
        await call.p.end_turn()
        await call.col.wait_kind("response_done")
        msgs = [next(iter(m["realtimeInput"])) for m in fake.connections[0].messages if "realtimeInput" in m]
        assert msgs[0] == "activityStart" and msgs[-1] == "activityEnd"
        assert set(msgs[1:-1]) == {"audio"}
        assert fake.connections[0].setup["realtimeInputConfig"]["automaticActivityDetection"] == {
            "disabled": True
        }
        kinds = call.col.kinds()
        assert kinds.index("speech_started") < kinds.index("speech_stopped") < kinds.index("response_started")
        assert fake.violations == []


async def test_voice_activity_and_text_turns(closing: list[Call]) -> None:
    async with FakeGeminiServer(
        [FakeTurn("heard you", "hello"), FakeTurn("typed reply")], voice_activity=True
    ) as fake:
        call = await open_call(fake, agent(modalities="audio"))
        closing.append(call)
        await speak(call.p.send_audio, "hello")
        await call.col.wait_kind("response_done")
        assert call.col.of("speech_started") and call.col.of("speech_stopped")
        await call.p.send_text("what did I type")
        await eventually(lambda: len(done_frames(call.col)) == 2)
        assert not call.col.of("transcript")  # modalities: audio
        assert "inputAudioTranscription" not in fake.connections[0].setup
        user_turn = fake.connections[0].messages[-1]["clientContent"]
        assert user_turn["turns"] == [{"role": "user", "parts": [{"text": "what did I type"}]}]
        assert fake.violations == []


async def test_odd_length_audio_is_a_typed_error(closing: list[Call]) -> None:
    """The session's caller path checks each frame's length (the format is fixed at SessionStart); the
    provider gets only checked, converted audio."""
    async with FakeGeminiServer() as fake:
        call = await open_call(fake)
        closing.append(call)
        caller_in = CallerAudioIn(PCM16_16K, call.p.input_format)
        with pytest.raises(RealtimeAudioFormatError) as err:
            caller_in.accept(b"\x01\x02\x03")
        assert err.value.code == "odd_pcm_length" and caller_in.clock.position_us == 0
        data, t_us = caller_in.accept(silence_pcm16(20))
        assert t_us == caller_in.clock.position_us == 20_000  # stamped when the frame had fully arrived
        send: Callable[[bytes], Awaitable[None]] = call.p.send_audio
        await send(data)
        await eventually(lambda: fake.audio_bytes_in == 640)


async def test_go_away_while_idle_reconnects_at_once(closing: list[Call]) -> None:
    async with FakeGeminiServer() as fake:
        call = await open_call(fake)
        closing.append(call)
        await fake.go_away(60000)
        await eventually(lambda: len(fake.open_connections()) == 1 and len(fake.connections) == 2)
        assert fake.connections[0].close_code == 1000
        assert fake.connections[1].resumed_handle in fake.sessions[0].handles
        assert call.p.stats.reconnect_reasons == ["go_away"]


async def test_backlog_overflow_is_reported_and_bounded(closing: list[Call]) -> None:
    async with FakeGeminiServer(setup_delay_s=0.3) as fake:
        call = await open_call(fake, agent(session={"reconnectBufferMs": 100}))
        closing.append(call)
        await fake.drop(*INTERNAL)
        await eventually(lambda: len(fake.connections) == 2)
        for _ in range(50):  # 1 s of caller audio while the new connection waits for setupComplete
            await call.p.send_audio(silence_pcm16(20))
        err = (await call.col.wait_kind("error")).error
        assert (err.code, err.fatal, err.kind) == ("reconnect_buffer_overflow", False, pb.ERROR_KIND_LIMIT)
        await eventually(lambda: fake.audio_bytes_in == 3200)  # the newest 100 ms survive
        assert call.p.stats.backlog_dropped_bytes == 50 * 640 - 3200
        assert fake.violations == []


async def test_invalid_steer_is_a_typed_error_without_reconnect(closing: list[Call]) -> None:
    async with FakeGeminiServer() as fake:
        call = await open_call(fake)
        closing.append(call)
        with pytest.raises(RealtimeProtocolError):
            await call.p.steer(pb.SteerFrame(temperature=5.0))
        with pytest.raises(RealtimeProtocolError):
            await call.p.steer(pb.SteerFrame(turn_detection=pb.TurnDetection(type="bogus")))
        await call.p.send_audio(silence_pcm16(20))  # a barrier: a switch would close this connection first
        await eventually(lambda: fake.audio_bytes_in == 640)
        assert len(fake.connections) == 1 and not call.col.of("error")


async def test_go_away_deadline_during_a_long_turn_reconnects_in_time(closing: list[Call]) -> None:
    story = "a very long answer that keeps going well past the deadline of this connection"
    async with FakeGeminiServer([FakeTurn(story, "go", go_away_ms=400)], realtime_factor=1.0) as fake:
        call = await open_call(fake)
        closing.append(call)
        await speak(call.p.send_audio, "go")
        done = (await call.col.wait_kind("response_done")).response_done
        assert (done.status, done.status_reason) == ("incomplete", "connection_lost")
        await eventually(lambda: len(fake.open_connections()) == 1 and len(fake.connections) == 2)
        assert fake.connections[0].close_code == 1000  # closed by the client before the 1011 deadline
        assert call.col.audio_bytes == fake.audio_bytes_out  # drained: what was sent was delivered
        assert 0 < fake.audio_bytes_out < len(synthesize_pcm16(story, 24000))
        assert call.p.stats.reconnect_reasons == ["go_away"]
        assert fake.violations == []


async def test_a_drop_mid_utterance_replays_it_to_the_new_connection(closing: list[Call]) -> None:
    """The utterance in progress when the connection drops is sent again to the resumed connection, so
    the model hears it whole; the speech events of the two connections pair up into one turn."""
    n = 16000 * 1200 // 1000  # a 1.2 s tone: the caller's utterance
    tone = (np.sin(2 * np.pi * 440 * np.arange(n) / 16000) * 8000).astype("<i2").tobytes()
    async with FakeGeminiServer([FakeTurn("one two three", "first")], voice_activity=True) as fake:
        call = await open_call(fake)
        closing.append(call)
        chunks = [tone[i : i + 640] for i in range(0, len(tone), 640)]
        half = len(chunks) // 2
        for chunk in [silence_pcm16(100), *chunks[:half]]:
            await call.p.send_audio(chunk)
        await eventually(lambda: fake.connections[0].in_speech)  # speech in progress ...
        await fake.drop(*INTERNAL)  # ... when the connection drops
        await eventually(lambda: len(fake.connections) == 2 and len(fake.open_connections()) == 1)
        for chunk in [*chunks[half:], *(silence_pcm16(20) for _ in range(40))]:
            await call.p.send_audio(chunk)
        await call.col.wait_kind("response_done")
        new = fake.connections[1]
        # the whole utterance (with the silence before it and the tail after) reached the new connection
        assert new.audio_bytes_in >= 3200 + len(tone) + 40 * 640
        assert call.p.stats.replayed_audio_bytes >= half * 640
        speech = [k for k in call.col.kinds() if k in ("speech_started", "speech_stopped")]
        assert speech == ["speech_started", "speech_stopped"]
        assert len(done_frames(call.col)) == 1 and fake.violations == []
