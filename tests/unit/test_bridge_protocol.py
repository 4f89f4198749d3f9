"""OpenAI Realtime wire building and error classification, checked against the ``openai`` package types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.beta.realtime import realtime_client_event as beta_client
from openai.types.realtime import realtime_client_event as ga_client
from pydantic import TypeAdapter

from rtvoice.bridge.providers.openai import protocol as proto
from rtvoice.bridge.providers.openai.ws import realtime_url
from rtvoice.core.errors import (
    RealtimeAuthError,
    RealtimeProtocolError,
    RealtimeProviderError,
    RealtimeUnsupportedError,
)
from rtvoice.core.settings import AgentSettings, parse_settings

GA = TypeAdapter(ga_client.RealtimeClientEvent)
BETA = TypeAdapter(beta_client.RealtimeClientEvent)


def first_update(settings: AgentSettings, shape: proto.Shape) -> dict[str, Any]:
    inp, out = proto.provider_formats(settings)
    session = proto.session_config(
        settings,
        shape,
        voice=settings.effective_voice,
        instructions=settings.instructions,
        turn_detection=settings.turn_detection,
        temperature=settings.temperature,
        input_format=inp,
        output_format=out,
        with_overrides=True,
    )
    event: dict[str, Any] = json.loads(proto.session_update(session, shape))
    (GA if shape == "ga" else BETA).validate_python(event)
    return event["session"]


TOOL = {
    "name": "get_weather",
    "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "endpoint": "http://127.0.0.1:1/weather",
}


@pytest.mark.parametrize("shape", ["ga", "beta"])
@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"turnDetection": {"type": "semantic_vad", "eagerness": "low"}},
        {"turnDetection": {"type": "none"}, "modalities": "audio"},
        {"audio": {"input": "g711_mulaw", "output": "g711_mulaw"}, "tools": [TOOL], "temperature": 0.7},
    ],
)
def test_first_session_update_validates(shape: proto.Shape, spec: dict[str, Any]) -> None:
    settings = parse_settings({"provider": "openai", **spec})
    session = first_update(settings, shape)
    if shape == "ga":
        assert session["type"] == "realtime" and "temperature" not in session
        fmt = session["audio"]["input"]["format"]
        assert fmt == (
            {"type": "audio/pcmu"}
            if settings.audio.input == "g711_mulaw"
            else {"type": "audio/pcm", "rate": 24000}
        )
    else:
        assert "type" not in session and "audio" not in session
        if settings.temperature is not None:
            assert session["temperature"] == 0.7
    td = session["audio"]["input"]["turn_detection"] if shape == "ga" else session["turn_detection"]
    assert (td is None) == (settings.turn_detection.type == "none")
    transcription = (
        session["audio"]["input"]["transcription"] if shape == "ga" else session["input_audio_transcription"]
    )
    assert (transcription is None) == (settings.modalities == "audio")


def test_provider_param_overrides_are_deep_merged() -> None:
    settings = parse_settings(
        {
            "provider": "openai",
            "providerParamOverrides": {"audio": {"output": {"speed": 1.2}}, "tool_choice": "none"},
        }
    )
    session = first_update(settings, "ga")
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
        "speed": 1.2,
    }
    assert session["tool_choice"] == "none"


@pytest.mark.parametrize("shape", ["ga", "beta"])
def test_client_events_validate(shape: proto.Shape) -> None:
    adapter = GA if shape == "ga" else BETA
    events = [
        proto.append_audio("AAAA"),
        proto.message_item("user", "hi", shape, proto.new_item_id()),
        proto.message_item("assistant", "hello", shape, proto.new_item_id()),
        proto.function_call_output("call_1", '{"ok": true}'),
        proto.truncate("item_1", 0, 120),
        proto.delete_item("item_1"),
        proto.response_cancel("resp_1"),
        proto.response_cancel(None),
        proto.RESPONSE_CREATE,
        proto.COMMIT,
        proto.session_update(proto.partial_voice("cedar", shape), shape),
        proto.session_update(proto.partial_turn_detection(parse_settings({}).turn_detection, shape), shape),
    ]
    for text in events:
        adapter.validate_python(json.loads(text))
    assert json.loads(proto.append_audio("QUJD")) == {"type": "input_audio_buffer.append", "audio": "QUJD"}
    assert len(proto.new_item_id()) <= 32


def test_error_classification() -> None:
    assert (
        proto.classify_error({"type": "invalid_request_error", "code": "response_cancel_not_active"}) is None
    )
    assert proto.classify_error({"code": "session_expired"}) is None
    auth = proto.classify_error(
        {"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad"}
    )
    assert isinstance(auth, RealtimeAuthError) and auth.fatal
    quota = proto.classify_error({"type": "insufficient_quota", "code": "insufficient_quota"})
    assert isinstance(quota, RealtimeProviderError) and quota.fatal and not quota.retryable
    server = proto.classify_error({"type": "server_error", "message": "boom"})
    assert isinstance(server, RealtimeProviderError) and server.retryable and not server.fatal
    bad = proto.classify_error({"type": "invalid_request_error", "code": "unknown_parameter"})
    assert isinstance(bad, RealtimeProtocolError) and not bad.fatal
    voice = proto.classify_error({"type": "invalid_request_error", "code": "unsupported_voice"})
    assert (
        isinstance(voice, RealtimeUnsupportedError) and voice.code == "unsupported_voice" and not voice.fatal
    )


def test_close_classification() -> None:
    for code in (1000, 1001, 1006, 1011, None):
        assert proto.classify_close(code, "") is None
    auth = proto.classify_close(3000, "invalid_request_error.invalid_api_key")
    assert isinstance(auth, RealtimeAuthError) and auth.fatal
    assert proto.classify_close(4000, "invalid_request_error.session_expired") is None
    other = proto.classify_close(1008, "policy")
    assert other is not None and other.fatal


def test_realtime_url() -> None:
    assert realtime_url(None, "gpt-realtime") == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert realtime_url("http://127.0.0.1:9/v1/realtime", "m") == "ws://127.0.0.1:9/v1/realtime?model=m"
    assert realtime_url("wss://x/v1/realtime?model=a", "b") == "wss://x/v1/realtime?model=a"
