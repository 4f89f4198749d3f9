"""Bridge test helpers other helpers can reuse: an in-process bridge server on 127.0.0.1:0 and a gRPC
``Converse`` caller that sends ``ClientFrame``s and collects ``ServerFrame``s.

    async with running_bridge(settings, provider_url=fake.url, api_key=KEY) as bridge:
        async with ConverseClient(bridge.target) as call:
            ready = await call.start(session_start(input_format="pcm16_16k"))
            await call.send_audio(pcm)
            frame = await call.wait_for("response_done")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from rtvoice.bridge.server import BridgeConfig, BridgeServer
from rtvoice.core.audio import AudioFormat
from rtvoice.core.end_reason import wire_name
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import bridge_pb2_grpc
from rtvoice.v1 import frames_pb2 as pb


@dataclass
class RunningBridge:
    server: BridgeServer
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running_bridge(
    settings: AgentSettings,
    *,
    provider_url: str | None = None,
    recorder: str | None = None,
    api_key: str | None = None,
    **config: Any,
) -> AsyncIterator[RunningBridge]:
    """A bridge server on 127.0.0.1 (ephemeral port) with ``settings``; stopped on exit."""
    server = BridgeServer(
        BridgeConfig(
            settings=settings, api_key=api_key, provider_url=provider_url, recorder_target=recorder, **config
        )
    )
    port = await server.start("127.0.0.1", 0)
    try:
        yield RunningBridge(server, port)
    finally:
        await server.stop(0.5)


def session_start(
    input_format: str = "pcm16_16k",
    output_format: str = "pcm16_16k",
    overrides_json: str = "",
    session_id: str = "",
) -> pb.ClientFrame:
    """A ``ClientFrame(start=...)`` with the caller formats named as in the settings (``g711_mulaw``...)."""
    return pb.ClientFrame(
        start=pb.SessionStart(
            session_id=session_id,
            agent_namespace="default",
            agent_name="test",
            input_format=AudioFormat.parse(input_format).to_proto(),
            output_format=AudioFormat.parse(output_format).to_proto(),
            overrides_json=overrides_json,
        )
    )


class ConverseClient:
    """One ``Converse`` stream: ``send`` frames, read collected ``frames`` / ``wait_for`` a kind."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.frames: list[pb.ServerFrame] = []
        #: ``time.monotonic()`` at which each of ``frames`` arrived
        self.arrivals: list[float] = []
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self._outbox: asyncio.Queue[pb.ClientFrame | None] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._seq = 0

    async def __aenter__(self) -> ConverseClient:
        self._channel = grpc.aio.insecure_channel(self.target)
        stub = bridge_pb2_grpc.RealtimeBridgeStub(self._channel)
        self._call = stub.Converse(self._requests())
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._call.cancel()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self._channel.close(None)

    async def _requests(self) -> AsyncIterator[pb.ClientFrame]:
        while True:
            frame = await self._outbox.get()
            if frame is None:
                return
            yield frame

    async def _read(self) -> None:
        try:
            async for frame in self._call:
                async with self._changed:
                    self.frames.append(frame)
                    self.arrivals.append(time.monotonic())
                    self._changed.notify_all()
        except BaseException as err:  # cancelled RPC at exit, or a transport failure the test inspects
            self.error = err
        finally:
            self.done.set()
            async with self._changed:
                self._changed.notify_all()

    async def send(self, frame: pb.ClientFrame) -> None:
        await self._outbox.put(frame)

    async def half_close(self) -> None:
        """End the request stream (the caller hangs up without an EndFrame)."""
        await self._outbox.put(None)

    async def start(self, frame: pb.ClientFrame | None = None, timeout_s: float = 10.0) -> pb.ServerFrame:
        """Send ``SessionStart`` and wait for ``ready`` (or the error/end that refuses the session)."""
        await self.send(frame or session_start())
        return await self.wait_for(lambda f: f.WhichOneof("frame") in ("ready", "end"), timeout_s=timeout_s)

    async def send_audio(
        self, data: bytes, fmt: str = "pcm16_16k", frame_ms: int = 20, pace_s: float = 0.0
    ) -> None:
        """Send ``data`` in ``frame_ms`` frames (``pace_s`` wall seconds apart; 0 = as fast as possible)."""
        f = AudioFormat.parse(fmt)
        step = f.bytes_for_ms(frame_ms)
        for off in range(0, len(data), step):
            self._seq += 1
            chunk = data[off : off + step]
            await self.send(
                pb.ClientFrame(audio=pb.AudioFrame(data=chunk, format=f.to_proto(), sequence=self._seq))
            )
            await asyncio.sleep(pace_s)

    async def stream_realtime(
        self, data: bytes, t0: float, fmt: str = "pcm16_16k", frame_ms: int = 20
    ) -> None:
        """Send ``data`` as a real caller does: frame ``n`` (``frame_ms`` each) once it is captured, at
        ``t0 + (n+1)·frame_ms`` (``time.monotonic()`` seconds), on an absolute schedule that does not
        drift."""
        f = AudioFormat.parse(fmt)
        step = f.bytes_for_ms(frame_ms)
        for n, off in enumerate(range(0, len(data), step)):
            delay = t0 + (n + 1) * frame_ms / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing of the simulated caller, not a wait for a result
            self._seq += 1
            chunk = data[off : off + step]
            await self.send(
                pb.ClientFrame(audio=pb.AudioFrame(data=chunk, format=f.to_proto(), sequence=self._seq))
            )

    def arrival_of(self, frame: pb.ServerFrame) -> float:
        """``time.monotonic()`` at which ``frame`` (one of ``frames``) arrived."""
        return self.arrivals[next(i for i, f in enumerate(self.frames) if f is frame)]

    def of_kind(self, kind: str) -> list[Any]:
        """Payloads of the collected frames of ``kind`` (``audio``, ``transcript``, ``error`` ...)."""
        return [getattr(f, kind) for f in self.frames if f.WhichOneof("frame") == kind]

    def kinds(self) -> list[str]:
        return [str(f.WhichOneof("frame")) for f in self.frames]

    async def wait_for(
        self,
        what: str | Callable[[pb.ServerFrame], bool],
        *,
        after: int = 0,
        count: int = 1,
        timeout_s: float = 10.0,
    ) -> pb.ServerFrame:
        """The ``count``-th frame (from index ``after``) of kind ``what`` or matching the predicate."""
        pred = what if callable(what) else (lambda f: f.WhichOneof("frame") == what)

        def found() -> pb.ServerFrame | None:
            hits = [f for f in self.frames[after:] if pred(f)]
            return hits[count - 1] if len(hits) >= count else None

        async def waiter() -> pb.ServerFrame:
            async with self._changed:
                while True:
                    hit = found()
                    if hit is not None:
                        return hit
                    if self.done.is_set():
                        raise AssertionError(f"stream ended without {what!r}; got {self.kinds()}")
                    await self._changed.wait()

        return await asyncio.wait_for(waiter(), timeout_s)


class CapturingRecorder:
    """Records what a session tees to its recorder, for assertions.

    Wraps the real ``RecorderLink`` when ``rtvoice.bridge.recorder_link`` is importable (frames also go to
    the recorder at ``target``); otherwise it only captures (recording off).
    """

    def __init__(self, target: str | None, start: Any, clock_t0_ns: int) -> None:
        self.start = start
        self.client: list[pb.ClientFrame] = []
        #: the session-clock stamp the bridge gave each client frame (None: stamped when recorded)
        self.client_t_us: list[int | None] = []
        self.server: list[pb.ServerFrame] = []
        self.spans: list[Any] = []
        self.end: pb.EndFrame | None = None
        self.archive_uri: str | None = None
        self.spans_dropped = 0
        self.frames_dropped = 0
        try:
            from rtvoice.bridge.recorder_link import RecorderLink
        except ImportError:
            self._link: Any = None
        else:
            self._link = RecorderLink(target, start, clock_t0_ns=clock_t0_ns)

    def open(self) -> None:
        if self._link is not None:
            self._link.open()

    def record_client(self, frame: pb.ClientFrame, t_us: int | None = None) -> None:
        self.client.append(frame)
        self.client_t_us.append(t_us)
        if self._link is not None:
            self._link.record_client(frame, t_us)

    def record_server(self, frame: pb.ServerFrame) -> None:
        self.server.append(frame)
        if self._link is not None:
            self._link.record_server(frame)

    def record_span(self, span: Any) -> None:
        self.spans.append(span)
        if self._link is not None:
            self._link.record_span(span)

    async def close(self, end: pb.EndFrame, timeout_s: float = 5.0) -> str | None:
        self.end = end
        if self._link is not None:
            self.archive_uri = await self._link.close(end, timeout_s)
            self.spans_dropped = self._link.spans_dropped
            self.frames_dropped = self._link.frames_dropped
        return self.archive_uri

    def server_kinds(self) -> list[str]:
        return [str(f.WhichOneof("frame")) for f in self.server]


def capture_recorders() -> tuple[list[CapturingRecorder], Callable[..., CapturingRecorder]]:
    """(list that fills with each session's recorder, factory for ``BridgeConfig.recorder_factory``)."""
    made: list[CapturingRecorder] = []

    def factory(target: str | None, start: Any, clock_t0_ns: int) -> CapturingRecorder:
        rec = CapturingRecorder(target, start, clock_t0_ns)
        made.append(rec)
        return rec

    return made, factory


def openai_settings(**spec: Any) -> AgentSettings:
    """OpenAI test settings: server VAD with 200 ms silence; ``spec`` (camelCase) on top."""
    from rtvoice.core.settings import parse_settings

    base: dict[str, Any] = {
        "provider": "openai",
        "turnDetection": {"type": "server_vad", "silenceDurationMs": 200},
    }
    base.update(spec)
    return parse_settings(base)


def utterance(text: str = "what is the weather today", rate: int = 16000) -> bytes:
    """Speech (espeak-ng) with 100 ms silence before and 400 ms after, PCM16 at ``rate``."""
    from tests.support.speech import silence_pcm16, synthesize_pcm16

    return silence_pcm16(100, rate) + synthesize_pcm16(text, rate) + silence_pcm16(400, rate)


@dataclass
class OpenAICall:
    """A live call through an in-process bridge to a fake OpenAI server (see :func:`openai_call`).

    ``manifest`` is filled after the call: the ``manifest.json`` of the session's archive written by the
    real recorder.
    """

    fake: Any
    call: ConverseClient
    recorders: list[CapturingRecorder]
    bridge: RunningBridge
    ready: pb.ServerFrame | None
    manifest: dict[str, Any] | None = None
    #: the session's archive folder and its files' contents (filled after the call, like ``manifest``;
    #: the folder itself is removed with the temporary directory)
    archive: Path | None = None
    archive_files: dict[str, bytes] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def openai_call(
    scenario: Any = None,
    settings: AgentSettings | None = None,
    start: pb.ClientFrame | None = None,
    api_key: str | None = None,
    wait_ready: bool = True,
    **bridge_config: Any,
) -> AsyncIterator[OpenAICall]:
    """Fake OpenAI server + real recorder + bridge + one started ``Converse`` stream.

    On exit everything is closed and checked: every event of the fake validated against the ``openai``
    types, and the session's archive is complete, holding exactly the frames the bridge teed (counted by
    :class:`CapturingRecorder`) with none dropped. ``wait_ready=False``: the test sends ``SessionStart``
    itself (``oc.ready`` is None), e.g. to stream audio before the provider is connected.
    """
    from tests.support.fake_openai import VALID_KEY, FakeOpenAI
    from tests.support.recorder import running_recorder

    recorders, factory = capture_recorders()
    with tempfile.TemporaryDirectory(prefix="rtvoice-bridge-") as tmp:
        async with running_recorder(Path(tmp)) as recorder, FakeOpenAI(scenario) as fake:
            async with running_bridge(
                settings or openai_settings(),
                provider_url=fake.url,
                api_key=api_key or VALID_KEY,
                recorder=f"127.0.0.1:{recorder.port}",
                recorder_factory=factory,
                **bridge_config,
            ) as bridge:
                async with ConverseClient(bridge.target) as call:
                    ready = await call.start(start) if wait_ready else None
                    oc = OpenAICall(fake, call, recorders, bridge, ready)
                    yield oc
            for rec in recorders:
                oc.manifest = await _archived_manifest(Path(tmp) / "archive", rec)
                oc.archive = Path(tmp) / "archive" / rec.start.session.session_id
                oc.archive_files = {p.name: p.read_bytes() for p in oc.archive.iterdir() if p.is_file()}
        assert fake.validation_errors == [], fake.validation_errors  # every event, both directions


async def _archived_manifest(root: Path, rec: CapturingRecorder) -> dict[str, Any]:
    path = root / rec.start.session.session_id / "manifest.json"
    for _ in range(250):
        if path.exists():
            break
        await asyncio.sleep(0.02)
    manifest: dict[str, Any] = json.loads(path.read_text())
    counts = manifest["counts"]
    assert manifest["complete"] is True, manifest
    assert rec.end is not None and manifest["end_reason"] == wire_name(rec.end.reason)
    assert counts["client_frames"] == len(rec.client), counts
    assert counts["server_frames"] == len(rec.server), counts
    assert counts["frames_dropped_bridge"] == 0 and counts["spans_dropped"] == 0, counts
    assert counts["spans"] >= len(rec.spans), counts  # plus the link's own stats span
    return manifest
