"""Tool calls through the bridge: run off the audio path, results (or errors) back to the model."""

from __future__ import annotations

import json

from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import openai_call, openai_settings, utterance
from tests.support.bridge_tool_http import tool_server
from tests.support.fake_openai import Scenario
from tests.support.speech import silence_pcm16


def tool_settings(endpoint: str, timeout_ms: int = 5000, max_result_chars: int = 4000) -> AgentSettings:
    return openai_settings(
        tools=[
            {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
                "endpoint": endpoint,
                "timeoutMs": timeout_ms,
                "maxResultChars": max_result_chars,
            }
        ]
    )


async def test_tool_that_sleeps_past_its_timeout_while_audio_keeps_flowing() -> None:
    scenario = Scenario(tool_call=("get_weather", '{"city": "Oslo"}'))
    with tool_server(slow_s=1.5) as tools:
        settings = tool_settings(tools.url + "/slow", timeout_ms=400)
        async with openai_call(scenario, settings=settings) as oc:
            call = oc.call
            await call.send_audio(utterance())
            tc = await call.wait_for("tool_call")
            await call.send_audio(silence_pcm16(600), pace_s=0.02)  # the caller keeps talking (silence)
            result = await call.wait_for("tool_result")
            done = await call.wait_for(
                lambda f: f.WhichOneof("frame") == "response_done", after=call.frames.index(result)
            )
            conn = oc.fake.connections[0]
    assert tc.tool_call.name == "get_weather" and json.loads(tc.tool_call.arguments_json) == {"city": "Oslo"}
    assert result.tool_result.is_error and "timed out after 400 ms" in result.tool_result.output
    assert result.tool_result.call_id == tc.tool_call.call_id
    assert done.response_done.status == "completed"
    assert tools.calls == [("/slow", {"city": "Oslo"})]
    log = conn.log
    called = log.index(("sent", "response.function_call_arguments.done"))
    answered = log.index(("received", "conversation.item.create"))
    appends_during_tool = log[called:answered].count(("received", "input_audio_buffer.append"))
    assert appends_during_tool >= 10  # caller audio reached the provider while the tool ran
    (output,) = conn.client_events("conversation.item.create")
    assert output["item"]["type"] == "function_call_output"
    assert json.loads(output["item"]["output"]) == {"error": "tool get_weather timed out after 400 ms"}
    assert log.index(("received", "response.create")) > answered
    assert call.of_kind("error") == []
    assert oc.fake.validation_errors == []
    (rec,) = oc.recorders
    assert {"tool_call", "tool_result"} <= set(rec.server_kinds())
    assert any(s.name == "tool.call" and s.attributes["is_error"] for s in rec.spans)


async def test_tool_result_is_truncated_and_spoken() -> None:
    scenario = Scenario(tool_call=("get_weather", '{"city": "Oslo"}'))
    with tool_server(big_chars=5000) as tools:
        settings = tool_settings(tools.url + "/big", max_result_chars=100)
        async with openai_call(scenario, settings=settings) as oc:
            await oc.call.send_audio(utterance())
            result = await oc.call.wait_for("tool_result")
            await oc.call.wait_for("response_done", count=2)
            conn = oc.fake.connections[0]
    assert not result.tool_result.is_error
    assert len(result.tool_result.output) == 100 and result.tool_result.output.endswith("[truncated]")
    assert conn.client_events("conversation.item.create")[0]["item"]["output"] == result.tool_result.output
    tools_decl = conn.client_events("session.update")[0]["session"]["tools"]
    assert tools_decl[0]["name"] == "get_weather" and tools_decl[0]["type"] == "function"
    finals = [t.text for t in oc.call.of_kind("transcript") if t.final and t.role == pb.ROLE_ASSISTANT]
    assert finals[-1].startswith("the tool says")
