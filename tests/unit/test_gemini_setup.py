"""The Gemini Live ``setup`` message from agent settings, validated against the google-genai live types."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtvoice.bridge.providers.gemini.codec import (
    activity_message,
    audio_message,
    audio_stream_end_message,
    encode,
    history_message,
    text_message,
    tool_response_message,
)
from rtvoice.bridge.providers.gemini.setup import (
    DEFAULT_URL,
    build_setup,
    model_path,
    to_gemini_schema,
    websocket_url,
)
from rtvoice.core.settings import AgentSettings, parse_settings
from tests.support.fake_gemini_wire import validate_client_message


def settings(**spec: Any) -> AgentSettings:
    return parse_settings({"provider": "gemini", **spec})


def valid(msg: dict[str, Any]) -> dict[str, Any]:
    assert validate_client_message(encode(msg)) is None, validate_client_message(encode(msg))
    return msg


def test_defaults() -> None:
    setup = valid(build_setup(settings()))["setup"]
    assert setup["model"] == "models/gemini-2.5-flash-native-audio-preview-12-2025"
    assert setup["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
    }
    assert setup["realtimeInputConfig"] == {
        "automaticActivityDetection": {
            "disabled": False,
            "startOfSpeechSensitivity": "START_SENSITIVITY_HIGH",
            "prefixPaddingMs": 300,
            "silenceDurationMs": 500,
        },
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
    }
    assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    assert "tools" not in setup and "historyConfig" not in setup


def test_fields_from_settings_and_overrides() -> None:
    s = settings(
        model="gemini-live-x",
        voice="Kore",
        instructions="Be brief.",
        temperature=0.3,
        modalities="audio",
        turnDetection={"type": "server_vad", "threshold": 0.8, "interruptResponse": False},
        providerParamOverrides={
            "generationConfig": {"topP": 0.9, "speechConfig": {"languageCode": "de-DE"}},
            "proactivity": {"proactiveAudio": True},
        },
    )
    setup = valid(build_setup(s, resumption_handle="h-1"))["setup"]
    assert setup["model"] == "models/gemini-live-x"
    gen = setup["generationConfig"]
    assert gen["temperature"] == 0.3 and gen["topP"] == 0.9
    assert gen["speechConfig"] == {
        "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
        "languageCode": "de-DE",
    }
    assert setup["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert "inputAudioTranscription" not in setup
    ric = setup["realtimeInputConfig"]
    assert ric["automaticActivityDetection"]["startOfSpeechSensitivity"] == "START_SENSITIVITY_LOW"
    assert ric["activityHandling"] == "NO_INTERRUPTION"
    assert setup["sessionResumption"] == {"handle": "h-1"}
    assert setup["proactivity"] == {"proactiveAudio": True}


@pytest.mark.parametrize(
    ("turn", "aad"),
    [
        ({"type": "none"}, {"disabled": True}),
        (
            {"type": "semantic_vad", "eagerness": "low"},
            {"disabled": False, "endOfSpeechSensitivity": "END_SENSITIVITY_LOW"},
        ),
        ({"type": "semantic_vad"}, {"disabled": False}),
    ],
)
def test_turn_detection_mapping(turn: dict[str, Any], aad: dict[str, Any]) -> None:
    setup = valid(build_setup(settings(turnDetection=turn)))["setup"]
    assert setup["realtimeInputConfig"]["automaticActivityDetection"] == aad


def test_tools_become_function_declarations() -> None:
    tool = {
        "name": "book",
        "description": "Book a table",
        "endpoint": "http://127.0.0.1:9/book",
        "parameters": {
            "type": "object",
            "properties": {
                "people": {"type": "integer", "minimum": 1},
                "when": {"type": ["string", "null"], "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["quiet", "window"]}},
            },
            "required": ["people"],
            "additionalProperties": False,
        },
    }
    ref_tool = {
        "name": "ref",
        "endpoint": "http://127.0.0.1:9/ref",
        "parameters": {
            "type": "object",
            "$defs": {"x": {"type": "string"}},
            "properties": {"a": {"$ref": "#/$defs/x"}},
        },
    }
    setup = valid(build_setup(settings(tools=[tool, ref_tool])))["setup"]
    book, ref = setup["tools"][0]["functionDeclarations"]
    assert book["parameters"] == {
        "type": "OBJECT",
        "required": ["people"],
        "properties": {
            "people": {"type": "INTEGER", "minimum": 1},
            "when": {"type": "STRING", "nullable": True, "format": "date-time"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["quiet", "window"]}},
        },
    }
    assert ref["parametersJsonSchema"] == ref_tool["parameters"] and "parameters" not in ref


def test_schema_conversion_of_any_of() -> None:
    assert to_gemini_schema({"anyOf": [{"type": "string"}, {"type": "number"}]}) == {
        "anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]
    }


def test_gemini3_replay_announces_history() -> None:
    setup = build_setup(settings(model="models/gemini-3.1-flash-live"), initial_history=True)["setup"]
    assert setup["historyConfig"] == {"initialHistoryInClientContent": True}


def test_model_path_and_url() -> None:
    assert model_path("gemini-x") == "models/gemini-x"
    assert model_path("models/gemini-x") == "models/gemini-x"
    assert websocket_url(None) == DEFAULT_URL
    assert websocket_url("ws://127.0.0.1:9") == (
        "ws://127.0.0.1:9/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    assert websocket_url("https://proxy.example/custom/path") == "wss://proxy.example/custom/path"


def test_client_messages_are_valid_sdk_messages() -> None:
    msgs = [
        audio_message(b"\x01\x00" * 320),
        activity_message(True),
        activity_message(False),
        audio_stream_end_message(),
        text_message("hi", realtime=True),
        text_message("hi", realtime=False),
        history_message([("user", "a"), ("model", "b")]),
        tool_response_message("fc_1", "f", '{"tempC": 21}', False),
        tool_response_message("fc_1", "f", "plain text", False),
        tool_response_message("fc_1", "f", '{"error": "timeout"}', True),
    ]
    for msg in msgs:
        valid(msg)
    assert json.loads(encode(msgs[-1]))["toolResponse"]["functionResponses"][0]["response"] == {
        "error": "timeout"
    }
    assert msgs[-2]["toolResponse"]["functionResponses"][0]["response"] == {"output": "plain text"}
