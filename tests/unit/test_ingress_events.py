"""Caller protocol v1 parsing and rendering (no sockets)."""

from __future__ import annotations

import json

import pytest

from rtvoice.core.errors import RealtimeAudioFormatError, RealtimeError, RealtimeProtocolError
from rtvoice.ingress import protocol as proto
from rtvoice.v1 import frames_pb2 as pb


def parse(event: object) -> proto.ParsedEvent:
    return proto.parse_client_event(json.dumps(event))


def test_session_start_defaults_and_formats() -> None:
    ev = parse({"type": "session.start"})
    assert ev.start is not None and ev.frame is None
    assert ev.start.input_format.name == "pcm16_16k" and ev.start.output_format.name == "pcm16_16k"
    assert ev.start.overrides_json == ""
    ev = parse(
        {
            "type": "session.start",
            "input_format": "g711_mulaw",
            "output_format": "pcm16_24k",
            "overrides": {"voice": "ash"},
            "metadata": {"k": "v"},
        }
    )
    assert ev.start is not None
    assert ev.start.input_format.sample_rate_hz == 8000 and ev.start.output_format.sample_rate_hz == 24000
    assert json.loads(ev.start.overrides_json) == {"voice": "ash"} and ev.start.metadata == {"k": "v"}


@pytest.mark.parametrize("fmt", ["pcm16_48k", "g711_alaw", "PCM16_16K", "", "wav"])
def test_session_start_refuses_formats_outside_the_caller_set(fmt: str) -> None:
    with pytest.raises(RealtimeAudioFormatError) as exc:
        parse({"type": "session.start", "output_format": fmt})
    assert exc.value.code == "unknown_format" and "pcm16_16k, pcm16_24k, g711_mulaw" in exc.value.message


def test_relayed_events_become_client_frames() -> None:
    mark = parse({"type": "playback.mark", "item_id": "it", "played_ms": 1234, "content_index": 1}).frame
    assert mark is not None and mark.playback_mark == pb.PlaybackMark(
        item_id="it", played_ms=1234, content_index=1
    )
    assert parse({"type": "interrupt"}).frame == pb.ClientFrame(interrupt=pb.InterruptFrame())
    assert parse({"type": "turn.end"}).frame == pb.ClientFrame(end_of_turn=pb.EndOfTurn())
    assert parse({"type": "text", "text": "hi"}).frame == pb.ClientFrame(text=pb.TextInput(text="hi"))
    end = parse({"type": "session.end"})
    assert end.type == "session.end" and end.frame is None and end.start is None


def test_steer_sets_only_given_fields() -> None:
    frame = parse({"type": "steer", "instructions": "be brief"}).frame
    assert frame is not None
    steer = frame.steer
    assert steer.instructions == "be brief"
    assert (
        not steer.HasField("voice")
        and not steer.HasField("temperature")
        and not steer.HasField("turn_detection")
    )
    frame = parse(
        {"type": "steer", "temperature": 1, "turn_detection": {"type": "semantic_vad", "eagerness": "high"}}
    ).frame
    assert frame is not None
    assert frame.steer.temperature == 1.0 and frame.steer.turn_detection.eagerness == "high"
    assert not frame.steer.turn_detection.HasField("threshold")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "bad_json"),
        ("{", "bad_json"),
        ("[" * 5000 + "]" * 5000, "bad_json"),
        ("null", "not_an_object"),
        ('"session.start"', "not_an_object"),
        ("{}", "missing_type"),
        ('{"type": 5}', "missing_type"),
        ('{"type": "Session.Start"}', "unknown_type"),
        ('{"type": "playback.mark", "item_id": "", "played_ms": 1}', "bad_field"),
        ('{"type": "playback.mark", "item_id": "a", "played_ms": 1.5}', "bad_field"),
        ('{"type": "playback.mark", "item_id": "a", "played_ms": true}', "bad_field"),
        ('{"type": "text", "text": 5}', "bad_field"),
        ('{"type": "steer", "voice": null}', "bad_field"),
        ('{"type": "session.start", "metadata": {"a": 1}}', "bad_field"),
        ('{"type": "session.start", "overrides": []}', "bad_field"),
        ('{"type": "interrupt", "now": true}', "bad_field"),
    ],
)
def test_bad_events_raise_typed_protocol_errors(text: str, code: str) -> None:
    with pytest.raises(RealtimeProtocolError) as exc:
        proto.parse_client_event(text)
    assert exc.value.code == code and exc.value.message
    assert not exc.value.fatal


def test_metadata_is_bounded() -> None:
    with pytest.raises(RealtimeProtocolError):
        parse({"type": "session.start", "metadata": {str(i): "v" for i in range(17)}})
    with pytest.raises(RealtimeProtocolError):
        parse({"type": "session.start", "metadata": {"k": "v" * 300}})


def test_rendering_server_frames() -> None:
    t = pb.ServerFrame(
        transcript=pb.TranscriptFrame(role=pb.ROLE_ASSISTANT, item_id="i", text="hey", final=False)
    )
    assert proto.event_from_server_frame(t) == {
        "type": "transcript",
        "role": "assistant",
        "item_id": "i",
        "text": "hey",
        "final": False,
    }
    clear = pb.ServerFrame(clear_audio=pb.ClearAudio(item_id="i"))
    assert proto.event_from_server_frame(clear) == {"type": "audio.clear", "item_id": "i"}
    bad_args = pb.ServerFrame(tool_call=pb.ToolCall(call_id="c", name="n", arguments_json="{oops"))
    assert proto.event_from_server_frame(bad_args)["arguments"] == "{oops"  # type: ignore[index]
    for kind in ("ready", "audio", "error", "end", "response_done"):
        frame = pb.ServerFrame(
            **{
                kind: getattr(
                    pb,
                    {
                        "ready": "SessionReady",
                        "audio": "AudioFrame",
                        "error": "ErrorFrame",
                        "end": "EndFrame",
                        "response_done": "ResponseDone",
                    }[kind],
                )()
            }
        )
        assert proto.event_from_server_frame(frame) is None
    done = proto.response_done_event(pb.ResponseDone(response_id="r", status="cancelled"), 123.456)
    assert done["latency_ms"] == 123.5 and done["status"] == "cancelled"
    err = proto.error_event(RealtimeError("boom", code="x", retryable=True, fatal=True))
    assert err == {
        "type": "error",
        "kind": "internal",
        "code": "x",
        "message": "boom",
        "retryable": True,
        "fatal": True,
    }
    assert json.loads(proto.dumps({"type": "a", "text": "é"})) == {"type": "a", "text": "é"}
