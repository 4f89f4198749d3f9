"""Barge-in through the bridge (docs/providers.md, "Truncate"): ClearAudio, response.cancel, truncate
at the played ms, late deltas of a cancelled response dropped."""

from __future__ import annotations

import dataclasses

import pytest

from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import openai_call, utterance
from tests.support.fake_openai import Scenario
from tests.support.gemini_calls import eventually

# 3 s of reply paced in real time, so the response is still running when the caller speaks.
PACED = Scenario(reply_audio_ms=3000, chunk_ms=40, pace_s=0.04)


@pytest.mark.parametrize("server_cancel_delay_s", [0.0, 0.5], ids=["server-cancels-first", "bridge-cancels"])
async def test_speech_started_mid_response_clears_cancels_and_truncates_at_played_ms(
    server_cancel_delay_s: float,
) -> None:
    scenario = dataclasses.replace(PACED, server_cancel_delay_s=server_cancel_delay_s)
    async with openai_call(scenario) as oc:
        call = oc.call
        await call.send_audio(utterance())
        first = await call.wait_for("audio", count=8)
        item = first.audio.item_id
        await call.send(pb.ClientFrame(playback_mark=pb.PlaybackMark(item_id=item, played_ms=120)))
        n = len(call.frames)
        await call.send_audio(utterance("stop please"))
        clear = await call.wait_for("clear_audio", after=n)
        clear_at = call.frames.index(clear)
        await call.wait_for(lambda f: f.WhichOneof("frame") == "response_done", after=n)
        await call.wait_for("response_started", after=clear_at)  # the answer to "stop please" begins
        conn = oc.fake.connections[0]
        truncates = conn.client_events("conversation.item.truncate")
    assert clear.clear_audio.item_id == item
    kinds = call.kinds()
    assert "speech_started" in kinds[n:clear_at]
    assert truncates == [
        {"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 120}
    ]
    assert conn.sent_events("conversation.item.truncated")
    late = [f for f in call.frames[clear_at:] if f.WhichOneof("frame") == "audio" and f.audio.item_id == item]
    assert late == []
    cancelled = [d for d in call.of_kind("response_done") if d.status == "cancelled"]
    if server_cancel_delay_s:
        # the response was still running when the bridge saw speech_started: the bridge cancelled it
        assert conn.client_events("response.cancel")
        assert cancelled and cancelled[0].status_reason == "client_cancelled"
    else:
        # the server cancelled by itself before the bridge could: no needless response.cancel
        assert cancelled and cancelled[0].status_reason == "turn_detected"
    assert call.of_kind("error") == []  # response_cancel_not_active is a benign race, not shown
    assert oc.fake.validation_errors == []
    (rec,) = oc.recorders
    assert any(s.name == "barge_in" and s.attributes["played_ms"] == 120 for s in rec.spans)


async def test_interrupt_frame_cancels_and_late_delta_is_dropped() -> None:
    async with openai_call(PACED) as oc:
        call = oc.call
        await call.send_audio(utterance())
        first = await call.wait_for("audio", count=6)
        item = first.audio.item_id
        await call.send(pb.ClientFrame(interrupt=pb.InterruptFrame()))
        clear = await call.wait_for("clear_audio")
        clear_at = call.frames.index(clear)
        done = await call.wait_for(lambda f: f.WhichOneof("frame") == "response_done", after=clear_at)
        conn = oc.fake.connections[0]
        await eventually(lambda: bool(conn.sent_events("conversation.item.truncated")))
    assert clear.clear_audio.item_id == item
    assert done.response_done.status == "cancelled"
    assert done.response_done.status_reason == "client_cancelled"
    # the fake sent one more delta after it received response.cancel ...
    log = conn.log
    cancel_at = log.index(("received", "response.cancel"))
    assert ("sent", "response.output_audio.delta") in log[cancel_at:]
    # ... and none of it reached the caller after ClearAudio
    late = [f for f in call.frames[clear_at:] if f.WhichOneof("frame") == "audio" and f.audio.item_id == item]
    assert late == []
    (trunc,) = conn.client_events("conversation.item.truncate")
    generated_ms = (
        sum(len(e["delta"]) * 3 // 4 for e in conn.sent_events("response.output_audio.delta")[:-1]) / 48
    )
    assert 0 < trunc["audio_end_ms"] <= generated_ms
    assert conn.sent_events("conversation.item.truncated")
    assert call.of_kind("error") == []
    assert oc.fake.validation_errors == []


async def test_interrupt_before_any_audio_played_deletes_instead_of_truncating() -> None:
    async with openai_call(PACED) as oc:
        call = oc.call
        await call.send_audio(utterance())
        first = await call.wait_for("audio", count=2)
        item = first.audio.item_id
        await call.send(pb.ClientFrame(playback_mark=pb.PlaybackMark(item_id=item, played_ms=0)))
        await call.send(pb.ClientFrame(interrupt=pb.InterruptFrame()))
        await call.wait_for("clear_audio")
        await call.wait_for(lambda f: f.WhichOneof("frame") == "response_done")
        conn = oc.fake.connections[0]
        await eventually(lambda: bool(conn.client_events("conversation.item.delete")))
    assert conn.client_events("conversation.item.truncate") == []
    assert conn.client_events("conversation.item.delete") == [
        {"type": "conversation.item.delete", "item_id": item}
    ]
    assert call.of_kind("error") == []
