"""transcript.json, manifest.json, spans.json and latencies of an archive; acks; broken streams."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import numpy as np
import pytest

from rtvoice.recorder.checkpoint import last_state
from rtvoice.recorder.spool import CHECKPOINT
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc
from tests.support.recorder import (
    STARTED_UNIX_NS,
    TRACE_ID,
    Frames,
    conversation,
    load_archive,
    running_recorder,
    send_session,
    tone,
    wait_for,
)
from tests.support.speech import synthesize_pcm16


async def test_transcript_manifest_spans_and_latencies(tmp_path: Path) -> None:
    f = conversation("conv-1")
    speech_ms = len(synthesize_pcm16("what is the weather today")) / 32
    user_end = 500 + speech_ms
    async with running_recorder(tmp_path) as server:
        acks = await send_session(server.port, f.frames)
    assert acks[-1].finalized and acks[-1].durable_seq == f.seq
    arc = load_archive(tmp_path / "archive" / "conv-1")
    turns = arc["transcript"]["turns"]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("user", "what is the weather today"),
        ("assistant", "It is sunny."),
        ("user", "thanks, bye"),
        ("assistant", ""),
    ]
    u1, a1, typed, a2 = turns
    assert u1["item_id"] == "u1" and u1["final"]
    assert abs(u1["start_ms"] - 500) <= 1 and abs(u1["end_ms"] - user_end) <= 1
    assert a1["response_id"] == "r1" and not a1["final"]  # text from deltas
    assert abs(a1["start_ms"] - (user_end + 450)) <= 1 and abs(a1["end_ms"] - (user_end + 1250)) <= 1
    assert typed["start_ms"] == typed["end_ms"] == 6000
    assert a2["start_ms"] == 6300 and a2["end_ms"] == 6700
    m = arc["manifest"]
    lat = {r["response_id"]: r for r in m["latency"]}
    assert lat["r1"]["first_audio_ms"] == pytest.approx(450, abs=1)
    assert lat["r1"]["turn_complete_ms"] == pytest.approx(900, abs=1)
    assert lat["r2"]["first_audio_ms"] == pytest.approx(300, abs=0.1)
    assert lat["r2"]["turn_complete_ms"] == pytest.approx(500, abs=0.1)
    assert m["session_id"] == "conv-1" and m["agent"] == {"namespace": "default", "name": "echo"}
    assert m["trace_id"] == TRACE_ID and m["provider"] == "local" and m["model"] == "local-echo"
    assert m["agent_settings"] == {"provider": "local", "voice": "alloy"}  # apiKey scrubbed
    assert "sk-should-not-appear" not in json.dumps(m)
    assert m["started_unix_ns"] == STARTED_UNIX_NS and m["started_at"] == "2026-01-02T03:04:05.000Z"
    assert m["ended_unix_ns"] == STARTED_UNIX_NS + int(m["duration_ms"] * 1e6)
    assert m["end_reason"] == "caller_hangup" and m["complete"] is True
    assert m["caller_formats"] == {"input": "pcm16_16k", "output": "pcm16_16k"}
    c = m["counts"]
    assert c["frames"] == f.seq - 1 and c["errors"] == 1 and c["turns"] == 4
    assert c["spans"] == 3 and c["spans_dropped"] == 0 and c["duplicates"] == 0
    files = {e["name"]: e for e in m["files"]}
    assert set(files) == {"audio.wav", "transcript.json", "spans.json"}
    for name, entry in files.items():
        data = (tmp_path / "archive" / "conv-1" / name).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    spans = sorted(arc["spans"], key=lambda s: s["start_unix_ns"])
    assert [s["name"] for s in spans] == ["provider.connect", "rtvoice.error", "session"]
    err = spans[1]
    assert err["session_id"] == "conv-1" and err["trace_id"] == TRACE_ID
    assert err["attributes"]["error.code"] == "rate_limited" and err["attributes"]["error.kind"] == "provider"
    assert err["start_unix_ns"] == STARTED_UNIX_NS + 6_600_000_000
    # The caller's speech sits in the left channel from 500 ms.
    rate, audio = arc["rate"], arc["audio"]
    np.testing.assert_array_equal(audio[8000 : 8000 + 16000, 0], np.frombuffer(synthesize_pcm16(
        "what is the weather today"), dtype="<i2")[:16000])  # fmt: skip
    assert rate == 16000
    assert not (tmp_path / "spool" / "conv-1").exists()  # stored, so the spool copy is gone


async def test_acks_follow_the_spool_and_duplicates_never_land(tmp_path: Path) -> None:
    f = Frames("dup-1")
    f.caller_stream(0, tone(440, 2000))
    frames = list(f.frames)
    async with running_recorder(tmp_path) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = recorder_pb2_grpc.RecorderStub(channel).Record()
            for frame in frames:
                await call.write(rpb.RecordBatch(frames=[frame]))
            durable = 0
            async for ack in call:
                durable = ack.durable_seq
                log = (tmp_path / "spool" / "dup-1" / CHECKPOINT).read_bytes()
                state, _ = last_state(log)
                assert state is not None and state["durable_seq"] >= durable  # acked only once checkpointed
                if durable == f.seq:
                    break
            # Resend the tail (as a bridge would after a break) plus the end: the resent frames are ignored.
            for frame in frames[-20:]:
                await call.write(rpb.RecordBatch(frames=[frame]))
            f.end(2100)
            await call.write(rpb.RecordBatch(frames=[f.frames[-1]]))
            async for ack in call:
                if ack.finalized:
                    break
    arc = load_archive(tmp_path / "archive" / "dup-1")
    assert arc["manifest"]["counts"]["duplicates"] == 20
    np.testing.assert_array_equal(arc["audio"][:32000, 0], tone(440, 2000))
    assert len(arc["audio"]) == 33600  # 2100 ms: no duplicated audio


async def test_broken_stream_gives_an_archive_complete_up_to_the_break(tmp_path: Path) -> None:
    f = Frames("broken-1")
    f.server(100, response_started=pb.ResponseStarted(response_id="r1"))
    f.agent_burst(200, tone(600, 300), item_id="a1")
    f.caller_stream(0, tone(440, 1500))
    async with running_recorder(tmp_path, resume_grace_s=0.2) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = recorder_pb2_grpc.RecorderStub(channel).Record()
            for frame in f.frames:
                await call.write(rpb.RecordBatch(frames=[frame]))
            async for ack in call:
                if ack.durable_seq == f.seq:
                    break
            call.cancel()  # the bridge vanished without an EndFrame
        await wait_for(lambda: (tmp_path / "archive" / "broken-1" / "manifest.json").exists())
    arc = load_archive(tmp_path / "archive" / "broken-1")
    m = arc["manifest"]
    assert m["end_reason"] == "stream_broken" and m["complete"] is False
    assert m["duration_ms"] == 1500
    np.testing.assert_array_equal(arc["audio"][:, 0], tone(440, 1500))
    assert np.any(arc["audio"][3200:8000, 1])
    assert m["latency"][0]["response_id"] == "r1"


async def test_bad_frames_are_counted_not_fatal(tmp_path: Path) -> None:
    f = Frames("bad-1")
    f.client(20, audio=pb.AudioFrame(data=b"\x01\x02\x03"))  # odd PCM16 length
    f.client(40, audio=pb.AudioFrame(data=tone(300, 20).tobytes()))
    f.end(60)
    async with running_recorder(tmp_path) as server:
        acks = await send_session(server.port, f.frames)
        assert acks[-1].finalized
        bad = Frames("../escape")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await send_session(server.port, bad.frames)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    arc = load_archive(tmp_path / "archive" / "bad-1")
    assert arc["manifest"]["counts"]["bad_frames"] == 1 and arc["manifest"]["counts"]["errors"] == 1
    assert arc["spans"][0]["attributes"]["error.code"] == "odd_pcm_length"
