"""Channel alignment of audio.wav: RecordFrames with chosen session times, over real gRPC, to a recorder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtvoice.core import g711
from rtvoice.v1 import frames_pb2 as pb
from tests.support.recorder import (
    Frames,
    last_sound_ms,
    load_archive,
    onset_ms,
    running_recorder,
    send_session,
    tone,
)

TOLERANCE_MS = 20


async def test_caller_and_agent_tones_land_at_their_session_times(tmp_path: Path) -> None:
    f = Frames("align-1")
    # Caller: 1000 ms of silence, a 500 ms tone, silence to 4000 ms, in real time (frames stamped at arrival).
    caller = np.concatenate([np.zeros(16000, np.int16), tone(440, 500), np.zeros(40000, np.int16)])
    f.caller_stream(0, caller)
    # Agent: a 700 ms tone that arrives in one burst at 2300 ms: it is heard from 2300 to 3000 ms.
    f.agent_burst(2300, tone(660, 700), item_id="item_a")
    f.end(4000)
    async with running_recorder(tmp_path) as server:
        acks = await send_session(server.port, f.frames)
    assert (
        acks[-1].finalized and acks[-1].archive_uri == (tmp_path / "archive" / "align-1").resolve().as_uri()
    )
    arc = load_archive(tmp_path / "archive" / "align-1")
    rate, audio = arc["rate"], arc["audio"]
    assert rate == 16000 and audio.shape[1] == 2
    assert abs(len(audio) / rate * 1000 - 4000) <= TOLERANCE_MS
    left, right = audio[:, 0], audio[:, 1]
    assert abs(onset_ms(left, rate) - 1000) <= TOLERANCE_MS
    assert abs(last_sound_ms(left, rate) - 1500) <= TOLERANCE_MS
    assert abs(onset_ms(right, rate) - 2300) <= TOLERANCE_MS
    assert abs(last_sound_ms(right, rate) - 3000) <= TOLERANCE_MS
    # Silence is real silence: nothing of the agent leaks into the caller channel and vice versa.
    assert not np.any(left[int(1.6 * rate) :])
    assert not np.any(right[: int(2.29 * rate)])


async def test_caller_gap_is_kept_and_small_jitter_is_not(tmp_path: Path) -> None:
    f = Frames("align-gap")
    f.caller_stream(0, tone(300, 600))
    # 400 ms without caller frames (a real gap: more than 60 ms ahead of the cursor), then a second tone.
    f.caller_stream(1000, tone(500, 500))
    # Frames that arrive 40 ms late (jitter within 60 ms) continue at the cursor.
    f.caller_stream(1540, tone(700, 400))
    f.end(2200)
    async with running_recorder(tmp_path) as server:
        await send_session(server.port, f.frames)
    arc = load_archive(tmp_path / "archive" / "align-gap")
    left, rate = arc["audio"][:, 0], arc["rate"]
    assert abs(last_sound_ms(left[: int(0.9 * rate)], rate) - 600) <= TOLERANCE_MS
    assert not np.any(left[int(0.62 * rate) : int(0.98 * rate)])
    assert abs(onset_ms(left, rate, after_ms=700) - 1000) <= TOLERANCE_MS
    # The jittered run starts right where the second tone ended (1500 ms), not at 1540 ms.
    expected = np.concatenate([tone(500, 500), tone(700, 400)])
    np.testing.assert_array_equal(left[16000 : 16000 + len(expected)], expected)
    counts = arc["manifest"]["counts"]
    assert counts["caller_gap_ms"] == 400 and counts["caller_audio_ms"] == 1500  # the gap, not the jitter


async def test_barge_in_clear_zeroes_the_unheard_tail(tmp_path: Path) -> None:
    f = Frames("align-clear")
    f.caller_stream(0, np.zeros(16000 * 4, np.int16))
    f.server(900, response_started=pb.ResponseStarted(response_id="r1"))
    f.agent_burst(1000, tone(500, 3000), item_id="a1")  # scheduled 1000..4000 ms
    f.server(2000, clear_audio=pb.ClearAudio(item_id="a1"))  # the caller barged in at 2000 ms
    f.server(2010, response_done=pb.ResponseDone(response_id="r1", status="cancelled"))
    f.server(2500, response_started=pb.ResponseStarted(response_id="r2"))
    f.agent_burst(2500, tone(800, 500), item_id="a2")  # a new answer from 2500 ms
    f.server(2600, response_done=pb.ResponseDone(response_id="r2", status="completed"))
    f.end(4000)
    async with running_recorder(tmp_path) as server:
        await send_session(server.port, f.frames)
    arc = load_archive(tmp_path / "archive" / "align-clear")
    right, rate = arc["audio"][:, 1], arc["rate"]
    assert abs(onset_ms(right, rate) - 1000) <= TOLERANCE_MS
    assert abs(last_sound_ms(right[: int(2.4 * rate)], rate) - 2000) <= TOLERANCE_MS
    assert not np.any(right[int(2.0 * rate) : int(2.5 * rate)])
    assert abs(onset_ms(right, rate, after_ms=2100) - 2500) <= TOLERANCE_MS
    assert abs(last_sound_ms(right, rate) - 3000) <= TOLERANCE_MS
    turns = {t["item_id"]: t for t in arc["transcript"]["turns"] if t["role"] == "assistant"}
    assert turns["a1"]["interrupted"] and abs(turns["a1"]["end_ms"] - 2000) <= 1
    assert not turns["a2"]["interrupted"] and abs(turns["a2"]["end_ms"] - 3000) <= 1
    assert arc["manifest"]["counts"]["clears"] == 1


async def test_mulaw_caller_and_24k_agent_are_resampled_and_aligned(tmp_path: Path) -> None:
    mulaw = pb.AudioFormat(encoding=pb.AUDIO_ENCODING_G711_MULAW, sample_rate_hz=8000)
    f = Frames("align-formats", input_format=mulaw, output_format=mulaw)
    caller = np.concatenate([np.zeros(4000, np.int16), tone(400, 600, 8000), np.zeros(8000, np.int16)])
    f.caller_stream(0, caller, rate_hz=8000, encoding=pb.AUDIO_ENCODING_G711_MULAW, encode=g711.pcm16_to_ulaw)
    # This agent frame says it is PCM16 at 24 kHz (formats travel with each frame).
    fmt24 = pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=24000)
    agent = tone(600, 800, 24000)
    for i in range(0, len(agent), 960):
        data = agent[i : i + 960].astype("<i2").tobytes()
        f.server(1200, audio=pb.AudioFrame(data=data, format=fmt24, item_id="a1"))
    f.end(2100)
    async with running_recorder(tmp_path) as server:
        await send_session(server.port, f.frames)
    arc = load_archive(tmp_path / "archive" / "align-formats")
    audio, rate = arc["audio"], arc["rate"]
    assert rate == 16000
    assert abs(onset_ms(audio[:, 0], rate) - 500) <= TOLERANCE_MS
    assert abs(last_sound_ms(audio[:, 0], rate) - 1100) <= TOLERANCE_MS
    assert abs(onset_ms(audio[:, 1], rate) - 1200) <= TOLERANCE_MS
    assert abs(last_sound_ms(audio[:, 1], rate) - 2000) <= TOLERANCE_MS
    assert arc["manifest"]["caller_formats"] == {"input": "g711_mulaw", "output": "g711_mulaw"}
