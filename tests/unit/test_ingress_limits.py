"""Bounded outbound queue, token-bucket rate limiter, routing patterns, WAV helpers of rtvoice call."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from rtvoice.caller.wavfile import WavError, read_wav, speech_end_sample
from rtvoice.ingress.limits import Close, Limits, OutboundOverflow, OutboundQueue, RateLimiter
from rtvoice.ingress.routing import AgentRef, BridgeRouter, parse_agent_path


async def test_outbound_queue_drops_oldest_audio_only() -> None:
    q = OutboundQueue(max_audio_ms=100, max_events=3, bytes_per_ms=32)
    q.put_event("e1")
    for i in range(8):  # 8 x 20 ms into a 100 ms budget
        q.put_audio(bytes([i]) * 640)
    q.put_event("e2")
    assert q.queued_audio_ms == 100 and q.dropped_audio_frames == 3 and q.dropped_audio_ms == 60
    q.put_close(1000, "bye")
    items = [await q.get() for _ in range(len(q))]
    assert items[0] == "e1" and items[-2] == "e2" and items[-1] == Close(1000, "bye")
    assert [b[0] for b in items if isinstance(b, bytes)] == [3, 4, 5, 6, 7]
    assert q.queued_audio_ms == 0


async def test_outbound_queue_clear_and_event_overflow() -> None:
    q = OutboundQueue(max_audio_ms=1000, max_events=2, bytes_per_ms=32)
    q.put_audio(b"\0" * 640)
    q.put_event("a")
    q.put_audio(b"\0" * 640)
    assert q.drop_audio() == 2 and len(q) == 1 and q.queued_audio_ms == 0 and q.dropped_audio_frames == 0
    q.put_event("b")
    with pytest.raises(OutboundOverflow):
        q.put_event("c")
    assert await q.get() == "a"
    q.put_event("c")


def test_rate_limiter_bucket() -> None:
    r = RateLimiter(10)
    now = r._last
    assert sum(r.allow(now) for _ in range(30)) == 10
    assert not r.allow(now + 0.05)
    assert r.allow(now + 0.11)
    assert sum(r.allow(now + 100) for _ in range(30)) == 10  # refills to the burst only


def test_limits_hard_cap_and_public() -> None:
    lim = Limits(max_frame_bytes=1000, max_text_bytes=2000)
    assert lim.websocket_max_size == 8000 + 1024
    assert lim.public()["max_frame_bytes"] == 1000


def test_agent_paths_and_patterns() -> None:
    assert parse_agent_path("/v1/agents/default/assistant") == AgentRef("default", "assistant")
    for bad in (
        "/v1/agents/Default/a",
        "/v1/agents/a",
        "/v1/agents/a/b/c",
        "/v1/agents/-a/b",
        "/v1/agents/a/b%2e",
        "/v2/agents/a/b",
        "/v1/agents/" + "a" * 64 + "/b",
    ):
        assert parse_agent_path(bad) is None, bad
    router = BridgeRouter(pattern="rtvoice-bridge-{name}.{namespace}.svc.cluster.local:50051")
    assert router.address_for(AgentRef("ns", "bot")) == "rtvoice-bridge-bot.ns.svc.cluster.local:50051"
    assert BridgeRouter(bridge="127.0.0.1:1").address_for(AgentRef("a", "b")) == "127.0.0.1:1"
    with pytest.raises(ValueError):
        BridgeRouter(pattern="{agent}:1")
    with pytest.raises(ValueError):
        BridgeRouter()


def _write(path: Path, samples: np.ndarray, rate: int, width: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_read_wav_converts_width_rate_and_channels(tmp_path: Path, width: int, rate: int) -> None:
    t = np.arange(rate // 2) / rate
    x = 0.5 * np.sin(2 * np.pi * 300 * t)
    if width == 1:
        data = (x * 127 + 128).astype(np.uint8)
    elif width == 2:
        data = (x * 32767).astype("<i2")
    elif width == 3:
        v = (x * (2**23 - 1)).astype("<i4")
        data = np.frombuffer(b"".join(int(s).to_bytes(4, "little", signed=True)[:3] for s in v), np.uint8)
    else:
        data = (x * (2**31 - 1)).astype("<i4")
    if width != 3:
        data = np.repeat(data[:, None], 2, axis=1).reshape(-1)
        channels = 2
    else:
        channels = 1
    out = read_wav(_write(tmp_path / "x.wav", data, rate, width, channels), 16000)
    assert abs(out.size - 8000) <= 2
    ref = (0.5 * np.sin(2 * np.pi * 300 * np.arange(out.size) / 16000) * 32767).astype(np.float64)
    mid = slice(500, out.size - 500)
    assert np.corrcoef(out[mid].astype(np.float64), ref[mid])[0, 1] > 0.99


def test_read_wav_refusals(tmp_path: Path) -> None:
    with pytest.raises(WavError, match="no such file"):
        read_wav(tmp_path / "missing.wav", 16000)
    (tmp_path / "text.wav").write_text("hello")
    with pytest.raises(WavError, match="16-bit mono 16000 Hz"):
        read_wav(tmp_path / "text.wav", 16000)


def test_speech_end_sample() -> None:
    x = np.zeros(16000, np.int16)
    assert speech_end_sample(x, 16000) is None
    x[3000:7000] = 8000
    x[9000] = 20000  # a lone click inside silence still counts as sound: RMS over 10 ms = 2000 > 328
    assert speech_end_sample(x, 16000) == 9001
    x[9000] = 0
    assert speech_end_sample(x, 16000) == 7000


def test_session_guard_rate_errors_and_deadlines() -> None:
    from rtvoice.core.audio import PCM16_16K
    from rtvoice.core.errors import RealtimeAudioFormatError, RealtimeLimitError
    from rtvoice.ingress.limits import SessionGuard

    g = SessionGuard(
        Limits(max_frames_per_s=2, idle_timeout_s=5, max_session_s=60, max_frame_bytes=640), now=0.0
    )
    assert g.admit(0.0) == (True, None) and g.admit(0.0) == (True, None)
    allowed, err = g.admit(0.1)
    assert not allowed and err is not None and err.code == "rate_limited" and err.retryable
    assert g.admit(0.2) == (False, None) and g.rate_dropped == 2  # one error per second
    assert g.expired(4.0) is None
    reason, fatal = g.expired(5.3) or ("", None)
    assert reason == "idle_timeout" and fatal is not None and fatal.fatal and fatal.kind == 5
    g.admit(59.0)
    assert (g.expired(60.0) or ("",))[0] == "max_duration"
    with pytest.raises(RealtimeAudioFormatError, match="640-byte limit"):
        g.check_audio(b"\0" * 642, PCM16_16K)
    g.check_audio(b"\0" * 640, PCM16_16K)
    with pytest.raises(RealtimeLimitError):
        SessionGuard(Limits(max_text_bytes=3)).check_text("éé")
