"""A spoken turn through the bridge to the real offline engine (``rtvoice.localrt``): real VAD, speech
recognition and synthesis; the archive is written by the real recorder."""

from __future__ import annotations

from rtvoice.core.settings import parse_settings
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import ConverseClient, capture_recorders, running_bridge, utterance
from tests.support.localrt import local_realtime

QUESTION = "what is the weather today"
PHRASES = [QUESTION, "you said what is the weather today", "hello there"]


async def test_spoken_turn_through_the_local_engine() -> None:
    settings = parse_settings(
        {"provider": "local", "turnDetection": {"type": "server_vad", "silenceDurationMs": 300}}
    )
    recs, factory = capture_recorders()
    async with (
        local_realtime(PHRASES) as url,
        running_bridge(settings, provider_url=url, recorder_factory=factory) as bridge,
    ):
        async with ConverseClient(bridge.target) as call:
            ready = await call.start()
            assert ready.ready.provider == "local"
            await call.send_audio(utterance(QUESTION) + b"\0" * 16000, pace_s=0.0)
            done = await call.wait_for("response_done", timeout_s=30)
            await call.send(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
            await call.wait_for("end")
    assert done.response_done.status == "completed"
    assert [e.message for e in call.of_kind("error")] == []
    finals = {(t.role, t.text) for t in call.of_kind("transcript") if t.final}
    assert (pb.ROLE_USER, QUESTION) in finals
    assert any(role == pb.ROLE_ASSISTANT and QUESTION in text for role, text in finals)
    audio = call.of_kind("audio")
    assert sum(len(a.data) for a in audio) / 32 > 500  # more than half a second of spoken reply at 16 kHz
    assert all(a.format.sample_rate_hz == 16000 for a in audio)
    (rec,) = recs
    assert rec.end is not None and rec.end.reason == pb.END_REASON_CALLER_HANGUP
