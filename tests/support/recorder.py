"""Test helpers for the recorder: a real in-process gRPC recorder on 127.0.0.1:0, frame builders, WAV reading.

``running_recorder(tmp_path)`` starts ``RecorderServer`` with a local archive (or a given store);
``Frames`` builds RecordFrames with chosen ``t_us`` (the session clock the bridge would stamp);
``send_session(port, frames)`` streams them over real gRPC and returns the acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import wave
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from rtvoice.core.end_reason import from_wire_name
from rtvoice.core.retry import Backoff
from rtvoice.core.spans import Span
from rtvoice.recorder.server import RecorderConfig, RecorderServer
from rtvoice.recorder.stores import ArchiveStore, LocalStore
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc
from tests.support.speech import synthesize_pcm16

STARTED_UNIX_NS = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z
TRACE_ID = "0123456789abcdef0123456789abcdef"


@contextlib.asynccontextmanager
async def running_recorder(
    tmp_path: Path,
    store: ArchiveStore | None = None,
    *,
    port: int = 0,
    spool: Path | None = None,
    **config: Any,
) -> AsyncIterator[RecorderServer]:
    """A started RecorderServer (spool ``tmp_path/spool``, archive ``tmp_path/archive`` by default)."""
    cfg = RecorderConfig(
        spool_dir=spool or tmp_path / "spool",
        store=store or LocalStore(tmp_path / "archive"),
        **{"resume_grace_s": 0.3, "upload_backoff": Backoff(initial_s=0.1, max_s=0.5), **config},
    )
    server = RecorderServer(cfg, "127.0.0.1", port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace_s=0)


def tone(freq_hz: float, ms: int, rate_hz: int = 16000, amplitude: int = 8000) -> npt.NDArray[np.int16]:
    """A sine tone, PCM16 samples."""
    n = rate_hz * ms // 1000
    return (np.sin(2 * np.pi * freq_hz * np.arange(n) / rate_hz) * amplitude).astype(np.int16)


def saw(start: int, count: int) -> npt.NDArray[np.int16]:
    """A known, never-repeating-within-40000-samples signal: sample ``i`` is ``(i * 7) % 40000 - 20000``."""
    i = np.arange(start, start + count, dtype=np.int64)
    return ((i * 7) % 40000 - 20000).astype(np.int16)


def record_start(session_id: str, **kw: Any) -> rpb.RecordStart:
    """A RecordStart of agent default/echo with PCM16 16 kHz caller formats (override any field)."""
    fmt = pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=16000)
    session = pb.SessionStart(
        session_id=session_id,
        agent_namespace="default",
        agent_name="echo",
        input_format=kw.pop("input_format", fmt),
        output_format=kw.pop("output_format", fmt),
        started_unix_ns=kw.pop("started_unix_ns", STARTED_UNIX_NS),
        metadata={"user_agent": "pytest"},
    )
    settings = kw.pop("settings", {"provider": "local", "voice": "alloy", "apiKey": "sk-should-not-appear"})
    return rpb.RecordStart(
        session=session,
        agent_settings_json=json.dumps(settings),
        provider="local",
        model="local-echo",
        **kw,
    )


class Frames:
    """Builds the RecordFrames of one session with explicit session times (ms)."""

    def __init__(self, session_id: str, **start_kw: Any) -> None:
        self.seq = 1
        self.frames: list[rpb.RecordFrame] = [
            rpb.RecordFrame(seq=1, t_us=0, start=record_start(session_id, **start_kw))
        ]

    def _add(self, t_ms: float, **payload: Any) -> rpb.RecordFrame:
        self.seq += 1
        frame = rpb.RecordFrame(seq=self.seq, t_us=int(t_ms * 1000), **payload)
        self.frames.append(frame)
        return frame

    def client(self, t_ms: float, **frame: Any) -> None:
        self._add(t_ms, client=pb.ClientFrame(**frame))

    def server(self, t_ms: float, **frame: Any) -> None:
        self._add(t_ms, server=pb.ServerFrame(**frame))

    def caller_stream(
        self,
        start_ms: float,
        samples: npt.NDArray[np.int16],
        frame_ms: int = 20,
        rate_hz: int = 16000,
        **fmt: Any,
    ) -> float:
        """Caller audio in real time from ``start_ms``, stamped at arrival; returns the end ms."""
        step = rate_hz * frame_ms // 1000
        encoding = fmt.get("encoding", pb.AUDIO_ENCODING_PCM16)
        t = start_ms
        for i in range(0, len(samples), step):
            chunk = samples[i : i + step]
            data = fmt["encode"](chunk) if "encode" in fmt else chunk.astype("<i2").tobytes()
            t += len(chunk) * 1000 / rate_hz
            audio = pb.AudioFrame(data=data, format=pb.AudioFormat(encoding=encoding, sample_rate_hz=rate_hz))
            self.client(t, audio=audio)
        return t

    def agent_burst(
        self,
        t_ms: float,
        samples: npt.NDArray[np.int16],
        item_id: str,
        frame_ms: int = 40,
        rate_hz: int = 16000,
    ) -> None:
        """Agent audio all arriving at ``t_ms`` (faster than real time, as providers send it)."""
        step = rate_hz * frame_ms // 1000
        fmt = pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=rate_hz)
        for i in range(0, len(samples), step):
            data = samples[i : i + step].astype("<i2").tobytes()
            self.server(t_ms, audio=pb.AudioFrame(data=data, format=fmt, item_id=item_id))

    def span(self, t_ms: float, name: str, **attributes: Any) -> None:
        at = STARTED_UNIX_NS + int(t_ms * 1e6)
        span = Span(
            trace_id=TRACE_ID, name=name, start_unix_ns=at, end_unix_ns=at + 1_000_000, attributes=attributes
        )
        self._add(t_ms, span=span.to_proto())

    def end(self, t_ms: float, reason: str = "caller_hangup") -> None:
        self._add(t_ms, end=pb.EndFrame(reason=from_wire_name(reason)))


def conversation(session_id: str, **start_kw: Any) -> Frames:
    """A spoken turn answered in audio, then a typed turn, an error and two bridge spans."""
    f = Frames(session_id, **start_kw)
    speech = np.frombuffer(synthesize_pcm16("what is the weather today"), dtype="<i2")
    caller = np.concatenate([np.zeros(8000, np.int16), speech, np.zeros(16000 * 6, np.int16)])
    speech_end_ms = 500 + len(speech) / 16
    # Frames interleaved by time, as the bridge would tee them.
    events: list[tuple[float, str, dict[str, object]]] = [
        (600, "server", {"speech_started": pb.SpeechStarted(audio_start_ms=500, item_id="u1")}),
        (speech_end_ms + 300, "server",
         {"speech_stopped": pb.SpeechStopped(audio_end_ms=int(speech_end_ms), item_id="u1")}),
        (speech_end_ms + 320, "server", {"response_started": pb.ResponseStarted(response_id="r1")}),
        (speech_end_ms + 350, "server", {"transcript": pb.TranscriptFrame(
            role=pb.ROLE_USER, item_id="u1", text="what is the weather today", final=True)}),
        (speech_end_ms + 500, "server", {"transcript": pb.TranscriptFrame(
            role=pb.ROLE_ASSISTANT, item_id="a1", text="It is ")}),
        (speech_end_ms + 510, "server", {"transcript": pb.TranscriptFrame(
            role=pb.ROLE_ASSISTANT, item_id="a1", text="sunny.")}),
        (speech_end_ms + 900, "server",
         {"response_done": pb.ResponseDone(response_id="r1", status="completed")}),
        (6000, "client", {"text": pb.TextInput(text="thanks, bye")}),
        (6100, "server", {"response_started": pb.ResponseStarted(response_id="r2")}),
        (6500, "server", {"response_done": pb.ResponseDone(response_id="r2", status="completed")}),
        (6600, "server", {"error": pb.ErrorFrame(kind=pb.ERROR_KIND_PROVIDER, code="rate_limited",
                                                 message="slow down", retryable=True)}),
    ]  # fmt: skip
    agent_at = [(speech_end_ms + 450, "a1", 800), (6300, "a2", 400)]
    t = 0.0
    for i in range(0, len(caller), 320):
        t += 20
        while events and events[0][0] <= t:
            at, side, payload = events.pop(0)
            getattr(f, side)(at, **payload)
        for at, item, ms in list(agent_at):
            if at <= t:
                f.agent_burst(at, tone(500, ms), item_id=item)
                agent_at.remove((at, item, ms))
        f.client(t, audio=pb.AudioFrame(data=caller[i : i + 320].astype("<i2").tobytes()))
    f.span(100, "provider.connect", provider="local")
    f.span(7000, "session", reason="caller_hangup")
    f.end(t + 10)
    return f


async def send_session(
    port: int, frames: Iterable[rpb.RecordFrame], *, wait_final: bool = True, timeout_s: float = 30.0
) -> list[rpb.RecordAck]:
    """Stream ``frames`` to the recorder over real gRPC and read acks until finalized (``wait_final``) or
    until the last frame is durable; then cancel the stream (without ``end`` that is a broken stream)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = recorder_pb2_grpc.RecorderStub(channel).Record(timeout=timeout_s)
        last = 0
        for frame in frames:
            await call.write(rpb.RecordBatch(frames=[frame]))
            last = frame.seq
        acks: list[rpb.RecordAck] = []
        async for ack in call:
            acks.append(ack)
            if ack.finalized or (not wait_final and ack.durable_seq >= last):
                break
        call.cancel()
        return acks


def read_wav(path: Path) -> tuple[int, npt.NDArray[np.int16]]:
    """(sample rate, samples shaped (n, channels)) of a PCM16 WAV."""
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), data.reshape(-1, w.getnchannels())


def onset_ms(
    channel: npt.NDArray[np.int16], rate_hz: int, threshold: int = 1000, after_ms: float = 0
) -> float:
    """Time (ms) of the first sample with ``|x| > threshold`` at or after ``after_ms``."""
    start = int(after_ms * rate_hz / 1000)
    idx = np.flatnonzero(np.abs(channel[start:].astype(np.int32)) > threshold)
    assert idx.size, "no signal found"
    return (start + int(idx[0])) * 1000 / rate_hz


def last_sound_ms(channel: npt.NDArray[np.int16], rate_hz: int, threshold: int = 1000) -> float:
    """Time (ms) right after the last sample with ``|x| > threshold``."""
    idx = np.flatnonzero(np.abs(channel.astype(np.int32)) > threshold)
    assert idx.size, "no signal found"
    return (int(idx[-1]) + 1) * 1000 / rate_hz


def load_archive(folder: Path) -> dict[str, Any]:
    """manifest, transcript, spans (list) and the WAV of an archive folder."""
    spans = [json.loads(line) for line in (folder / "spans.json").read_text().splitlines() if line]
    rate, audio = read_wav(folder / "audio.wav")
    return {
        "manifest": json.loads((folder / "manifest.json").read_text()),
        "transcript": json.loads((folder / "transcript.json").read_text()),
        "spans": spans,
        "rate": rate,
        "audio": audio,
    }


async def wait_for(predicate: Any, timeout_s: float = 15.0, interval_s: float = 0.05) -> None:
    """Poll ``predicate()`` (sync) until true; fails the test after ``timeout_s`` (a safety timeout)."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


FRAME = 320  # 20 ms at 16 kHz


def assert_caller_signal(left: npt.NDArray[np.int16], samples: int) -> None:
    """The caller channel holds ``saw(0, samples)`` exactly once, after leading silence: no gap, no
    duplicate, nothing after it."""
    first = int(np.flatnonzero(left)[0])  # the first frame lands at its arrival time minus its duration
    assert first < FRAME * 5 and not np.any(left[:first])
    np.testing.assert_array_equal(left[first : first + samples], saw(0, samples))
    assert not np.any(left[first + samples :])


class Feeder:
    """Feeds the link a known caller signal ahead of real time: a 500 ms burst, then 20 ms frames every
    12 ms. The placement cursor stays ahead of the session clock, so the caller channel must be exactly
    continuous, and any gap or duplicate shows (a loop stall shorter than the lead changes nothing)."""

    def __init__(self, link: Any) -> None:
        self.link = link
        self.pos = 0

    async def feed(self, frames: int) -> None:
        for i in range(frames):
            data = saw(self.pos, FRAME).tobytes()
            self.link.record_client(pb.ClientFrame(audio=pb.AudioFrame(data=data)))
            self.pos += FRAME
            if self.pos > 25 * FRAME or i == frames - 1:
                await asyncio.sleep(0.012)

    async def until(self, frames: int) -> None:
        while self.pos < frames * FRAME:  # noqa: ASYNC110 - polls a counter another task advances
            await asyncio.sleep(0.005)


_RUN_RECORDER = (
    "import argparse, sys\n"
    "from rtvoice.recorder.cli import register\n"
    "p = argparse.ArgumentParser(prog='rtvoice'); register(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)


class RecorderProcess:
    """``rtvoice recorder`` in a child process (the CLI entry point), for crash tests (SIGKILL)."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc: Any = None
        self.port = 0

    async def start(self, timeout_s: float = 30.0) -> int:
        import asyncio
        import sys

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _RUN_RECORDER, "recorder", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        assert line.startswith(b"RTVOICE_READY "), line
        self.port = int(json.loads(line[len(b"RTVOICE_READY ") :])["port"])
        return self.port

    async def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no last checkpoint."""
        self.proc.kill()
        await self.proc.wait()

    async def terminate(self) -> int:
        self.proc.terminate()
        rc: int = await self.proc.wait()
        return rc
