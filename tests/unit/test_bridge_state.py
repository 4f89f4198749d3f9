"""Small state keepers of the bridge: playback tracking, history, backlog, session config, steering."""

from __future__ import annotations

import time

import pytest

from rtvoice.bridge.config import parse_overrides, session_config
from rtvoice.bridge.playback import PlaybackTracker
from rtvoice.bridge.providers.history import ConversationHistory
from rtvoice.bridge.providers.reconnect import AudioBacklog, backoff_delays_s
from rtvoice.bridge.steering import SteerPlan, plan_steer
from rtvoice.core.audio import PCM16_16K, AudioFormat
from rtvoice.core.errors import RealtimeAudioFormatError, RealtimeProtocolError, RealtimeUnsupportedError
from rtvoice.core.settings import parse_settings
from rtvoice.v1 import frames_pb2 as pb


def test_playback_marks_clamp_and_estimate() -> None:
    pt = PlaybackTracker(PCM16_16K)
    pt.on_sent("a", 32 * 500)  # 500 ms sent
    assert pt.sent_ms("a") == 500
    pt.on_mark("a", 900)
    assert pt.played_ms("a") == 500  # never more than was sent
    pt.on_mark("a", 120)
    assert pt.played_ms("a") == 120 and pt.audible()
    pt.on_sent("b", 32 * 1000)
    time.sleep(0.05)
    est = pt.played_ms("b")  # no mark: wall time since first audio
    assert 40 <= est <= 1000
    pt.clear("b")
    assert pt.is_cleared("b") and not pt.audible() and pt.current_item is None
    assert pt.played_ms("unknown") == 0


def test_history_replay_order_truncation_and_bound() -> None:
    h = ConversationHistory()
    h.add("u1", "user")
    h.add("a1", "assistant")
    h.set_text("a1", "assistant", "the weather is sunny and warm")
    h.set_text("u1", "user", "what is the weather")
    h.add("u2", "user")  # no transcript: left out
    h.truncate("a1", 0.5)
    assert h.replay() == [("user", "what is the weather"), ("assistant", "the weather is")]
    h.remove("u1")
    assert [r for r, _ in h.replay()] == ["assistant"]
    for i in range(500):
        h.set_text(f"x{i}", "user", "t")
    assert len(h) == 400


def test_backlog_keeps_newest_within_bound() -> None:
    b = AudioBacklog(max_bytes=10)
    for chunk in (b"aaaa", b"bbbb", b"cccc"):
        b.push(chunk)
    assert b.drain() == [b"bbbb", b"cccc"] and b.dropped_bytes == 4 and len(b) == 0
    delays = list(backoff_delays_s(4, base_s=0.1, cap_s=0.3))
    assert delays[0] == 0 and len(delays) == 4 and all(d <= 0.36 for d in delays)


def test_session_config_overrides_and_formats() -> None:
    base = parse_settings({"provider": "openai"})
    start = pb.SessionStart(
        input_format=AudioFormat.parse("g711_mulaw").to_proto(),
        overrides_json='{"voice": "cedar", "turnDetection": {"type": "none"}}',
    )
    cfg = session_config(base, start)
    assert cfg.settings.voice == "cedar" and cfg.settings.turn_detection.type == "none"
    assert cfg.settings.audio.input == "g711_mulaw" and cfg.caller_input.name == "g711_mulaw"
    assert cfg.caller_output == PCM16_16K  # default from the settings
    assert cfg.settings.provider == "openai"
    with pytest.raises(RealtimeProtocolError) as e1:
        parse_overrides('{"tools": []}')
    assert e1.value.code == "override_not_allowed"
    with pytest.raises(RealtimeProtocolError) as e2:
        parse_overrides("[1]")
    assert e2.value.code == "bad_overrides"
    with pytest.raises(RealtimeProtocolError) as e3:
        session_config(base, pb.SessionStart(overrides_json='{"temperature": 7}'))
    assert e3.value.code == "invalid_overrides"
    with pytest.raises(RealtimeAudioFormatError):
        session_config(
            base,
            pb.SessionStart(
                input_format=pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=11025)
            ),
        )


def test_steer_plan() -> None:
    steer = pb.SteerFrame(voice="ash", temperature=0.9, turn_detection=pb.TurnDetection(type="none"))
    plan, unsupported = plan_steer(steer, temperature_supported=False)
    assert isinstance(unsupported, RealtimeUnsupportedError) and not unsupported.fatal
    now, later = plan.split()
    assert now == SteerPlan(turn_detection=plan.turn_detection) and later == SteerPlan(voice="ash")
    assert plan.turn_detection is not None and plan.turn_detection.type == "none"
    plan2, none = plan_steer(pb.SteerFrame(temperature=0.9), temperature_supported=True)
    assert none is None and plan2.temperature == pytest.approx(0.9)
    assert SteerPlan(voice="a").merged(SteerPlan(instructions="b")) == SteerPlan(voice="a", instructions="b")
    assert not SteerPlan()
    with pytest.raises(RealtimeProtocolError):
        plan_steer(pb.SteerFrame(turn_detection=pb.TurnDetection(type="loud")), temperature_supported=True)
    with pytest.raises(RealtimeProtocolError):
        plan_steer(pb.SteerFrame(voice=" "), temperature_supported=True)
