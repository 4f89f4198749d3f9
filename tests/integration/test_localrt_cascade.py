"""The offline engine as an STT → LLM → TTS cascade, stage by stage, over the OpenAI Realtime GA protocol.

HTTP stages talk to real HTTP servers on 127.0.0.1 (``tests/support/openai_http.py``: protocol-faithful
fakes of OpenAI's transcription, streaming chat and speech APIs); the fake transcription endpoint runs
the real pocketsphinx recognizer on the audio the engine uploads, and the fake speech endpoint answers
real espeak-ng speech. Every event the engine sends is validated against the ``openai`` package's
``RealtimeServerEvent`` types by :class:`RealtimeTestClient`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import numpy as np
import pytest

from rtvoice.core.settings import load_agent_file, parse_settings
from rtvoice.localrt.asr import get_recognizer
from rtvoice.localrt.cli import _options, register
from rtvoice.localrt.llm import bundled_unavailable_reason
from rtvoice.localrt.options import EngineOptions
from rtvoice.localrt.responder import NOT_UNDERSTOOD
from rtvoice.up.cli import DEFAULT_AGENT
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import ConverseClient, capture_recorders, running_bridge, utterance
from tests.support.bridge_tool_http import tool_server
from tests.support.localrt import RealtimeTestClient, local_realtime, pcm16_to_16k, speech_pcm24k
from tests.support.openai_http import openai_http_server, text_deltas, tool_call_deltas
from tests.support.speech import synthesize_pcm16

PHRASES = ["what is the weather today", "hello there", "what is the capital of france"]
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ANSWER = "It is sunny in Paris today. The temperature is twenty degrees."


def recognize_phrases(samples: np.ndarray, form: dict[str, str]) -> tuple[str, float | None]:
    """The fake endpoint's recognizer: real pocketsphinx, constrained to the test phrases."""
    return get_recognizer().recognize(samples.astype(np.int16), PHRASES), 0.9


def weather_chat(body: dict[str, Any]) -> list[dict[str, Any]]:
    """First turn: call get_weather; after the tool output: a two-sentence answer."""
    if body["messages"][-1]["role"] == "tool":
        return text_deltas(ANSWER)
    return tool_call_deltas("call_w1", "get_weather", json.dumps({"city": "Paris"}))


def espeak_speech(body: dict[str, Any]) -> bytes:
    return synthesize_pcm16(body["input"], 24000)


async def test_http_cascade_answers_a_spoken_question_through_a_tool_call() -> None:
    async with openai_http_server(recognize_phrases, weather_chat, espeak_speech, event_delay_s=0.03) as api:
        options = EngineOptions(
            tuple(PHRASES), stt="http", stt_url=api.base_url, stt_model="whisper-1", stt_api_key="sk-stt",
            chat_url=api.base_url, chat_model="gpt-test", tts="http", tts_url=api.base_url,
        )  # fmt: skip
        async with local_realtime(options=options) as url, RealtimeTestClient.connect(url) as client:
            await client.recv()
            await client.update_session(
                tools=[WEATHER_TOOL],
                audio={"input": {"transcription": {"model": "whisper-1"}}, "output": {"voice": "alloy"}},
            )
            await client.append_audio(speech_pcm24k("what is the weather today"))
            first = await client.wait_for("response.done", 60)
            (heard,) = client.of_type("conversation.item.input_audio_transcription.completed")

            # the model asked for the tool: a function_call item, as OpenAI Realtime sends it
            (call,) = first["response"]["output"]
            assert call["type"] == "function_call" and call["name"] == "get_weather"
            assert json.loads(call["arguments"]) == {"city": "Paris"} and call["call_id"] == "call_w1"
            args_done = client.of_type("response.function_call_arguments.done")[-1]
            assert args_done["call_id"] == "call_w1" and args_done["arguments"] == call["arguments"]
            assert first["response"]["status"] == "completed"

            # the client runs the tool and asks the engine to continue
            output = {"type": "function_call_output", "call_id": "call_w1", "output": '{"sky": "sunny"}'}
            await client.send({"type": "conversation.item.create", "item": output})
            await client.send({"type": "response.create"})
            second = await client.wait_for("response.done", 60)

    assert heard["transcript"] == "what is the weather today"
    (stt_req,) = api.of("/v1/audio/transcriptions")
    assert stt_req["form"]["model"] == "whisper-1" and stt_req["headers"]["Authorization"] == "Bearer sk-stt"

    chat1, chat2 = api.of("/v1/chat/completions")
    assert chat1["json"]["stream"] is True and chat1["json"]["model"] == "gpt-test"
    assert chat1["json"]["tools"][0]["function"]["name"] == "get_weather"
    assert chat1["json"]["messages"][-1] == {"role": "user", "content": "what is the weather today"}
    assert chat2["json"]["messages"][-2]["tool_calls"][0]["id"] == "call_w1"
    assert chat2["json"]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_w1",
        "content": '{"sky": "sunny"}',
    }

    assert second["response"]["status"] == "completed"
    (message,) = second["response"]["output"]
    assert message["content"][0]["transcript"] == ANSWER
    rid = second["response"]["id"]
    assert len(client.audio_bytes(rid)) > 24000 * 2  # more than a second of 24 kHz speech

    # streamed: one speech request per sentence, the first sent while the chat stream was still running
    speech_reqs = api.of("/v1/audio/speech")
    assert [r["json"]["input"] for r in speech_reqs] == [
        "It is sunny in Paris today. ",
        "The temperature is twenty degrees.",
    ]
    assert all(r["json"]["voice"] == "alloy" and r["json"]["response_format"] == "pcm" for r in speech_reqs)
    assert speech_reqs[0]["t"] < chat2["t_end"]


async def test_low_confidence_words_are_never_echoed() -> None:
    confidence = {"value": 0.2}

    def unsure(samples: np.ndarray, form: dict[str, str]) -> tuple[str, float | None]:
        return "hello there", confidence["value"]

    async with openai_http_server(stt=unsure) as api:
        async with local_realtime(PHRASES, stt="http", stt_url=api.base_url) as url:
            async with RealtimeTestClient.connect(url) as client:
                await client.recv()
                await client.append_audio(speech_pcm24k("hello there"))
                low = await client.wait_for("response.done", 60)
                confidence["value"] = 0.9
                await client.append_audio(speech_pcm24k("hello there"))
                high = await client.wait_for("response.done", 60)
    assert low["response"]["output"][0]["content"][0]["transcript"] == NOT_UNDERSTOOD
    assert high["response"]["output"][0]["content"][0]["transcript"] == "You said: hello there."


async def test_unknown_voice_is_an_unsupported_error_at_setup_and_on_steer() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        created = await client.recv()
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"output": {"voice": "klingon"}}},
            }
        )
        err = await client.wait_for("error")
        assert err["error"]["code"] == "unsupported_voice"
        assert (
            err["error"]["param"] == "session.audio.output.voice"
            and "--list-voices" in err["error"]["message"]
        )
        updated = await client.update_session(instructions="still here")  # the session was not changed
        assert (
            updated["session"]["audio"]["output"]["voice"] == created["session"]["audio"]["output"]["voice"]
        )

        await client.send(
            {"type": "response.create", "response": {"audio": {"output": {"voice": "en-gb-typo"}}}}
        )
        err2 = await client.wait_for("error")
        assert (
            err2["error"]["code"] == "unsupported_voice"
            and err2["error"]["param"] == "response.audio.output.voice"
        )
    assert not client.of_type("response.created")


async def test_british_and_piper_voices_really_speak() -> None:
    question = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]}
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        # steer to Piper (loads the voice in the background), then one answer per voice
        updated = await client.update_session(audio={"output": {"voice": "piper:en_US-joe-medium"}})
        assert updated["session"]["audio"]["output"]["voice"] == "piper:en_US-joe-medium"
        spoken: dict[str, bytes] = {}
        for voice in ("piper:en_US-joe-medium", "ballad"):
            response: dict[str, Any] = {"conversation": "none", "input": [question]}
            if voice == "ballad":  # a per-response voice; Piper is the session's
                response["audio"] = {"output": {"voice": voice}}
            await client.send({"type": "response.create", "response": response})
            done = await client.wait_for("response.done", 60)
            assert done["response"]["status"] == "completed", done
            assert done["response"]["audio"]["output"]["voice"] == voice
            spoken[voice] = client.audio_bytes(done["response"]["id"])
    for voice, audio in spoken.items():
        heard = get_recognizer().recognize(
            pcm16_to_16k(audio, 24000), ["you said hello there", "sorry i did not catch that"]
        )
        assert heard == "you said hello there", voice
    assert spoken["ballad"] != spoken["piper:en_US-joe-medium"]


@pytest.mark.skipif(bundled_unavailable_reason() is not None, reason=str(bundled_unavailable_reason()))
async def test_bundled_model_answers_a_spoken_question() -> None:
    async with local_realtime(PHRASES, llm="bundled") as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await client.append_audio(speech_pcm24k("what is the capital of france"))
        done = await client.wait_for("response.done", 90)
    answer = done["response"]["output"][0]["content"][0]["transcript"]
    assert done["response"]["status"] == "completed"
    assert "paris" in answer.lower() and not answer.startswith("You said"), answer
    deltas = client.of_type("response.output_audio_transcript.delta")
    assert len(deltas) > 3 and "".join(d["delta"] for d in deltas) == answer


async def test_tool_call_of_the_http_llm_runs_through_the_bridge_tool_runtime() -> None:
    """Caller audio → bridge → engine (chat stage asks for get_weather) → the bridge's tool runtime
    POSTs the arguments to the tool endpoint → function_call_output + response.create → spoken answer."""
    with tool_server() as tools:
        tool = {k: v for k, v in WEATHER_TOOL.items() if k != "type"}
        settings = parse_settings({
            "provider": "local",
            "turnDetection": {"type": "server_vad", "silenceDurationMs": 300},
            "tools": [{**tool, "endpoint": tools.url + "/echo"}],
        })  # fmt: skip
        async with (
            openai_http_server(chat=weather_chat) as api,
            local_realtime(PHRASES, chat_url=api.base_url) as url,
            running_bridge(settings, provider_url=url, recorder_factory=capture_recorders()[1]) as bridge,
            ConverseClient(bridge.target) as call,
        ):
            await call.start()
            await call.send_audio(utterance("what is the weather today") + b"\0" * 16000, pace_s=0.0)
            tc = await call.wait_for("tool_call", timeout_s=30)
            result = await call.wait_for("tool_result", timeout_s=30)
            done = await call.wait_for(
                lambda f: f.WhichOneof("frame") == "response_done" and f.response_done.status == "completed"
                and any(t.text == ANSWER for t in call.of_kind("transcript") if t.final),
                timeout_s=60,
            )  # fmt: skip
            await call.send(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
    assert tc.tool_call.name == "get_weather" and json.loads(tc.tool_call.arguments_json) == {"city": "Paris"}
    assert tools.calls == [("/echo", {"city": "Paris"})]
    assert json.loads(result.tool_result.output) == {"echo": {"city": "Paris"}}
    assert done.response_done.status == "completed"
    chat2 = api.of("/v1/chat/completions")[-1]["json"]
    assert chat2["messages"][-1]["role"] == "tool" and json.loads(chat2["messages"][-1]["content"]) == {
        "echo": {"city": "Paris"}
    }
    assert [e.message for e in call.of_kind("error")] == []


async def test_the_default_agent_answers_a_spoken_question_offline() -> None:
    """The embedded default agent of ``rtvoice up``, through the same engine arguments it gets there."""
    spec = load_agent_file(DEFAULT_AGENT).spec
    parser = argparse.ArgumentParser(prog="rtvoice")
    register(parser.add_subparsers())
    options = _options(parser.parse_args(["local-realtime", *spec.local_engine.cli_args()]))
    if options.llm_kind == "bundled" and bundled_unavailable_reason() is not None:
        pytest.skip(str(bundled_unavailable_reason()))
    assert options.llm_kind == "bundled"
    async with local_realtime(options=options) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await client.update_session(
            instructions=spec.instructions, audio={"output": {"voice": spec.effective_voice}}
        )
        await client.append_audio(speech_pcm24k("What is the capital of France?"))
        done = await client.wait_for("response.done", 120)
    answer = done["response"]["output"][0]["content"][0]["transcript"]
    assert "paris" in answer.lower() and not answer.startswith(("You said", "Sorry")), answer


async def test_cancel_while_the_answer_is_still_streaming_stops_both_stages() -> None:
    long_answer = "One two three four five. " * 8

    def slow_chat(body: dict[str, Any]) -> list[dict[str, Any]]:
        return text_deltas(long_answer.strip())

    async with openai_http_server(chat=slow_chat, event_delay_s=0.1) as api:
        async with (
            local_realtime(PHRASES, chat_url=api.base_url) as url,
            RealtimeTestClient.connect(url) as client,
        ):
            await client.recv()
            question = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "count"}],
            }
            await client.send({"type": "conversation.item.create", "item": question})
            await client.send({"type": "response.create"})
            await client.wait_for("response.output_audio.delta", 30)  # the first sentence is being spoken
            await client.send({"type": "response.cancel"})
            done = await client.wait_for("response.done", 30)
            (chat,) = api.of("/v1/chat/completions")
            assert await asyncio.to_thread(chat["finished"].wait, 15)  # noticed at the fake's next event
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    spoken = done["response"]["output"][0]["content"][0]["transcript"]
    assert spoken and long_answer.startswith(spoken) and len(spoken) < len(long_answer) // 2
    assert chat.get("aborted") and "t_end" not in chat  # the engine hung up on the chat stream


async def test_max_output_tokens_cuts_a_streamed_text_answer() -> None:
    async with openai_http_server(chat=lambda body: text_deltas("word " * 40), event_delay_s=0.02) as api:
        async with (
            local_realtime(PHRASES, chat_url=api.base_url) as url,
            RealtimeTestClient.connect(url) as client,
        ):
            await client.recv()
            await client.update_session(output_modalities=["text"], max_output_tokens=3)
            question = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "talk"}],
            }
            await client.send({"type": "conversation.item.create", "item": question})
            await client.send({"type": "response.create"})
            done = await client.wait_for("response.done", 30)
    assert done["response"]["status"] == "incomplete"
    assert done["response"]["status_details"]["reason"] == "max_output_tokens"
    (item,) = done["response"]["output"]
    assert item["status"] == "incomplete" and 0 < len(item["content"][0]["text"]) <= 12
    assert (
        "".join(e["delta"] for e in client.of_type("response.output_text.delta"))
        == item["content"][0]["text"]
    )
