"""One session clock across provider connections, lossless reconnect, and the response watchdog.

Real sockets: caller → bridge over gRPC, bridge → fake OpenAI Realtime server over WebSocket, every frame
teed to the real recorder, whose archive is checked. The caller is a known signal streamed in real time
(tone bursts at known sample positions), so the truth of every time is known: where each utterance
starts and ends, and when the caller received the agent's first audio.

Each disruption (close 1001, TCP drop, session expiry, recycle, voice switch) happens mid-call, followed
by a second spoken turn. The fake server's speech times restart at 0 on every connection, as OpenAI's do.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from rtvoice.bridge.providers import create_provider
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import OpenAICall, openai_call, openai_settings, session_start
from tests.support.fake_openai import Scenario

RATE = 16000
#: caller speech as (start ms, duration ms); silence elsewhere
BURSTS = [(300, 1000), (2800, 1400)]
TOTAL_MS = 5600
#: tolerances of the checks (ms)
TURN_TOLERANCE_MS = 40
LATENCY_TOLERANCE_MS = 50


def tone_bursts(bursts: list[tuple[int, int]], total_ms: int) -> bytes:
    """PCM16 16 kHz: a 440 Hz tone (amplitude 8000) during each burst, digital silence elsewhere."""
    pcm = np.zeros(total_ms * RATE // 1000, dtype=np.int16)
    for start_ms, dur_ms in bursts:
        a, n = start_ms * RATE // 1000, dur_ms * RATE // 1000
        pcm[a : a + n] = (np.sin(2 * np.pi * 440 * np.arange(n) / RATE) * 8000).astype(np.int16)
    return pcm.astype("<i2").tobytes()


@dataclass
class Run:
    oc: OpenAICall
    t0: float  # caller's time.monotonic() at SessionStart = session time 0


async def converse(
    oc: OpenAICall,
    bursts: list[tuple[int, int]],
    total_ms: int,
    responses: int,
    between: Callable[[OpenAICall], Awaitable[None]] | None = None,
) -> Run:
    """SessionStart, then the signal in real time from that moment (like a real caller, not waiting for
    ``ready``); ``between`` runs after the first ``response_done``; returns after ``responses`` responses
    and the whole signal, then hangs up."""
    call = oc.call
    t0 = time.monotonic()
    await call.send(session_start())
    streamer = asyncio.create_task(call.stream_realtime(tone_bursts(bursts, total_ms), t0))
    await call.wait_for("ready", timeout_s=15)
    await call.wait_for("response_done", timeout_s=15)
    if between is not None:
        await between(oc)
    await call.wait_for("response_done", count=responses, timeout_s=20)
    await asyncio.wait_for(streamer, total_ms / 1000 + 10)
    await call.send(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
    await call.wait_for("end", timeout_s=15)
    return Run(oc, t0)


def true_first_audio_ms(run: Run, response_index: int, speech_end_ms: int) -> float:
    """The caller's truth: first agent audio of the ``response_index``-th response received (caller
    clock) minus the moment it finished sending the end of the speech it answers."""
    call = run.oc.call
    started = [f for f in call.frames if f.WhichOneof("frame") == "response_started"][response_index]
    after = call.frames.index(started)
    first = next(f for f in call.frames[after:] if f.WhichOneof("frame") == "audio" and f.audio.data)
    return (call.arrival_of(first) - run.t0) * 1000 - speech_end_ms


def check_turns(run: Run, bursts: list[tuple[int, int]]) -> None:
    """Speech events to the caller and user turns in the archive: paired, in order, where spoken."""
    call, oc = run.oc.call, run.oc
    speech = [
        (f.WhichOneof("frame"), f.speech_started.audio_start_ms or f.speech_stopped.audio_end_ms)
        for f in call.frames
        if f.WhichOneof("frame") in ("speech_started", "speech_stopped")
    ]
    expected = [ev for s, d in bursts for ev in (("speech_started", s), ("speech_stopped", s + d))]
    assert [k for k, _ in speech] == [k for k, _ in expected], speech
    for (_, got), (_, want) in zip(speech, expected, strict=True):
        assert abs(got - want) <= TURN_TOLERANCE_MS, (speech, expected)
    turns = json.loads(oc.archive_files["transcript.json"])["turns"]
    user = [(t["start_ms"], t["end_ms"]) for t in turns if t["role"] == "user"]
    assert len(user) == len(bursts), turns
    for (start, end), (s, d) in zip(user, bursts, strict=True):
        assert (
            end is not None
            and abs(start - s) <= TURN_TOLERANCE_MS
            and abs(end - (s + d)) <= TURN_TOLERANCE_MS
        )
    assert [t["start_ms"] for t in turns] == sorted(t["start_ms"] for t in turns)


def check_turn_latency(run: Run, index: int, speech_end_ms: int) -> None:
    """The response's first-audio latency in the archive and in the bridge's span: the caller's truth."""
    truth = true_first_audio_ms(run, index, speech_end_ms)
    assert run.oc.manifest is not None
    archived = run.oc.manifest["latency"][index]["first_audio_ms"]
    assert archived is not None and archived >= 0
    assert abs(archived - truth) <= LATENCY_TOLERANCE_MS, (archived, truth)
    (rec,) = run.oc.recorders
    spans = [s for s in rec.spans if s.name == "response"]
    bridge_ms = spans[index].attributes["first_audio_ms"]
    assert bridge_ms is not None and abs(bridge_ms - truth) <= LATENCY_TOLERANCE_MS, (bridge_ms, truth)


async def voice_switch(oc: OpenAICall) -> None:
    await oc.call.send(pb.ClientFrame(steer=pb.SteerFrame(voice="ash")))


def recycling_provider(max_age_s: float) -> Callable[[AgentSettings, str | None, str | None], Any]:
    """A provider factory whose connections are recycled after ``max_age_s`` (the settings allow 30 s at
    the least; the test shortens the age on the real adapter's connection core)."""

    def factory(settings: AgentSettings, api_key: str | None, base_url: str | None) -> Any:
        provider = create_provider(settings, api_key, base_url)
        provider.link.max_age_s = max_age_s  # type: ignore[attr-defined]
        return provider

    return factory


CASES: dict[str, dict[str, Any]] = {
    "close_1001": dict(scenario=Scenario(disrupt="close_1001", disrupt_at_in_ms=3100)),
    "tcp_drop": dict(scenario=Scenario(disrupt="tcp_drop", disrupt_at_in_ms=3100)),
    "session_expired": dict(scenario=Scenario(disrupt="session_expired", disrupt_at_in_ms=3100)),
    "recycle": dict(provider_factory=recycling_provider(2.0)),
    "voice_switch": dict(between=voice_switch),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_second_turn_after_a_provider_switch_is_on_the_session_clock(case: str) -> None:
    opts = dict(CASES[case])
    between: Callable[[OpenAICall], Awaitable[None]] | None = opts.pop("between", None)
    async with openai_call(wait_ready=False, **opts) as oc:
        run = await converse(oc, BURSTS, TOTAL_MS, responses=2, between=between)
        conns = oc.fake.connections
    assert len(conns) >= 2  # a recycle every 2 s may replace the second connection too, after turn 2
    check_turns(run, BURSTS)
    check_turn_latency(run, 1, BURSTS[1][0] + BURSTS[1][1])
    # the new connection heard the whole second utterance (replayed from where it was cut)
    assert conns[1].loud_ms >= 0.99 * BURSTS[1][1], (conns[0].loud_ms, conns[1].loud_ms)
    # and its own speech times restarted at 0: the bridge mapped them
    assert conns[1].speech_ms and conns[1].speech_ms[-1][1] < BURSTS[1][0] + BURSTS[1][1] - 500
    assert [e.code for e in oc.call.of_kind("error") if e.fatal] == []


async def test_first_call_with_a_slow_provider_connect_keeps_caller_audio_positions() -> None:
    bursts, total = [(300, 1000)], 3000
    async with openai_call(Scenario(connect_delay_s=0.4), wait_ready=False) as oc:
        run = await converse(oc, bursts, total, responses=1)
        ready_at = (oc.call.arrival_of(oc.call.frames[0]) - run.t0) * 1000
    assert ready_at >= 350  # the provider really was slow: audio queued before it was connected
    check_turns(run, bursts)
    check_turn_latency(run, 0, 1300)
    assert oc.manifest is not None
    with wave.open(io.BytesIO(oc.archive_files["audio.wav"])) as wav:
        wav_ms = wav.getnframes() / wav.getframerate() * 1000
    assert abs(wav_ms - oc.manifest["duration_ms"]) <= 100, (wav_ms, oc.manifest["duration_ms"])


async def test_a_response_that_never_ends_is_a_typed_error_and_the_next_turn_works() -> None:
    settings = openai_settings(session={"responseTimeoutMs": 1500})
    bursts, total = [(300, 800), (4300, 800)], 6500
    async with openai_call(Scenario(silent_responses=1), settings=settings, wait_ready=False) as oc:
        run = await converse(oc, bursts, total, responses=2)
    call = oc.call
    (err,) = [f for f in call.frames if f.WhichOneof("frame") == "error"]
    assert err.error.kind == pb.ERROR_KIND_READ_TIMEOUT and err.error.code == "response_timeout"
    assert not err.error.fatal and err.error.retryable
    started = next(f for f in call.frames if f.WhichOneof("frame") == "response_started")
    waited_ms = (call.arrival_of(err) - call.arrival_of(started)) * 1000
    assert 1400 <= waited_ms <= 2000, waited_ms
    first, second = call.of_kind("response_done")
    assert (first.status, first.status_reason) == ("cancelled", "response_timeout")
    assert second.status == "completed"
    rid2 = second.response_id
    assert any(
        f.WhichOneof("frame") == "audio" and f.audio.data for f in call.frames[call.frames.index(started) :]
    )
    assert rid2 != first.response_id
    (rec,) = oc.recorders
    assert any(s.name == "error" and s.attributes["code"] == "response_timeout" for s in rec.spans)
    # the cancel reached the provider, and the next turn was answered on the same connection
    assert oc.fake.connections[0].client_events("response.cancel")
    assert len(oc.fake.connections) == 1
    del run
