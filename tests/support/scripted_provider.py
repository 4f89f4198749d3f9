"""A scripted, in-memory ``RealtimeProvider`` and a socket-free harness around ``BridgeSession``.

``ScriptedProvider`` implements the provider interface without any wire protocol: the test *pushes* the
frames the provider would produce (``push``/``respond``) and reads back every call the session made
(``calls``, awaitable with ``wait_call``). ``SessionHarness`` runs a real ``BridgeSession`` with an
in-memory caller stream, caller writer and recorder sink, so barge-in, steering, tools and the session
clock are tested without gRPC, WebSockets or fixed sleeps: every wait is on a condition.

This is a fake of the provider side only (the real adapters are tested against fake OpenAI / Gemini
servers over real sockets); the session code under test is the production code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from rtvoice.bridge.barge_in import Cut
from rtvoice.bridge.config import session_config
from rtvoice.bridge.providers.base import RealtimeProvider
from rtvoice.bridge.session import BridgeSession
from rtvoice.core.audio import PCM16_16K, PCM16_24K, AudioFormat
from rtvoice.core.settings import AgentSettings, parse_settings
from rtvoice.core.spans import SessionTracer, Span
from rtvoice.v1 import frames_pb2 as pb

DEFAULT_TIMEOUT_S = 5.0


async def until(cond: Callable[[], Any], timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Poll ``cond`` on the loop until it returns something truthy (returned); ``TimeoutError`` else."""
    async with asyncio.timeout(timeout_s):
        while not (value := cond()):  # noqa: ASYNC110 - the state lives in the code under test
            await asyncio.sleep(0.002)
    return value


@dataclass
class Call:
    """One method call the session made on the provider."""

    name: str
    args: tuple[Any, ...]


class ScriptedProvider(RealtimeProvider):
    """``RealtimeProvider`` whose output the test scripts. Formats: PCM16 16 kHz in, 24 kHz out."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        input_format: AudioFormat = PCM16_16K,
        output_format: AudioFormat = PCM16_24K,
        connect_error: Exception | None = None,
    ) -> None:
        super().__init__(settings, None)
        self.name = "scripted"
        self.input_format = input_format
        self.output_format = output_format
        self._connect_error = connect_error
        self._frames: asyncio.Queue[pb.ServerFrame] = asyncio.Queue()
        self.calls: list[Call] = []
        self.audio = bytearray()
        self.closed = False

    # -- scripting -------------------------------------------------------------------------------------

    def push(self, *frames: pb.ServerFrame) -> None:
        """Frames the provider produces (delivered in order through ``events``)."""
        for frame in frames:
            self._frames.put_nowait(frame)

    def audio_frame(self, item_id: str, ms: int, *, level: int = 3000) -> pb.ServerFrame:
        """``ms`` of agent audio of ``item_id`` (a constant PCM16 level, output format)."""
        n = int(self.output_format.sample_rate_hz * ms / 1000)
        data = int(level).to_bytes(2, "little", signed=True) * n
        return pb.ServerFrame(
            audio=pb.AudioFrame(data=data, format=self.output_format.to_proto(), item_id=item_id)
        )

    def respond(self, response_id: str, item_id: str, chunks_ms: list[int]) -> None:
        """``response_started`` then agent audio chunks of ``item_id`` (no ``response_done``)."""
        self.push(pb.ServerFrame(response_started=pb.ResponseStarted(response_id=response_id)))
        self.push(*(self.audio_frame(item_id, ms) for ms in chunks_ms))

    def done(self, response_id: str, status: str = "completed") -> None:
        self.push(pb.ServerFrame(response_done=pb.ResponseDone(response_id=response_id, status=status)))

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [c.args for c in self.calls if c.name == name]

    async def wait_call(self, name: str, count: int = 1) -> tuple[Any, ...]:
        """The ``count``-th call of ``name`` (waits for it)."""
        await until(lambda: len(self.of(name)) >= count)
        return self.of(name)[count - 1]

    # -- RealtimeProvider ------------------------------------------------------------------------------

    async def connect(self) -> None:
        self.calls.append(Call("connect", ()))
        if self._connect_error is not None:
            raise self._connect_error

    async def events(self) -> AsyncIterator[pb.ServerFrame]:
        while True:
            frame = await self._frames.get()
            yield frame
            if frame.HasField("end"):
                return

    async def send_audio(self, data: bytes) -> None:
        self.audio += data

    async def end_turn(self) -> None:
        self.calls.append(Call("end_turn", ()))

    async def send_text(self, text: str) -> None:
        self.calls.append(Call("send_text", (text,)))

    async def interrupt(self, cut: Cut | None) -> None:
        self.calls.append(Call("interrupt", (cut,)))

    async def abandon_response(self) -> None:
        self.calls.append(Call("abandon_response", ()))

    async def steer(self, steer: pb.SteerFrame) -> None:
        self.calls.append(Call("steer", (steer,)))

    async def send_tool_result(self, result: pb.ToolResult) -> None:
        self.calls.append(Call("send_tool_result", (result,)))

    async def close(self) -> None:
        self.closed = True
        self.push(pb.ServerFrame(end=pb.EndFrame(reason=pb.END_REASON_PROVIDER_CLOSED)))


@dataclass
class MemoryRecorder:
    """The recorder sink, in memory: every frame and span, with the ``t_us`` given (None: read time)."""

    client: list[tuple[pb.ClientFrame, int | None]] = field(default_factory=list)
    server: list[pb.ServerFrame] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)

    def record_client(self, frame: pb.ClientFrame, t_us: int | None = None) -> None:
        self.client.append((frame, t_us))

    def record_server(self, frame: pb.ServerFrame) -> None:
        self.server.append(frame)

    def record_span(self, span: Span) -> None:
        self.spans.append(span)

    def span_names(self) -> list[str]:
        return [s.name for s in self.spans]


class SessionHarness:
    """A ``BridgeSession`` over a ``ScriptedProvider``; caller frames in, written frames out.

    ``gate``: when set, the caller writer blocks until ``release()`` (agent audio stays queued)."""

    def __init__(self, spec: dict[str, Any] | None = None, start: pb.SessionStart | None = None) -> None:
        settings = parse_settings({"provider": "openai", **(spec or {})})
        self.cfg = session_config(settings, start or pb.SessionStart())
        self.provider = ScriptedProvider(self.cfg.settings)
        self.recorder = MemoryRecorder()
        self.written: list[pb.ServerFrame] = []
        self._requests: asyncio.Queue[pb.ClientFrame | None] = asyncio.Queue()
        self._open_gate = asyncio.Event()
        self._open_gate.set()
        self.session = BridgeSession(
            session_id="s1",
            config=self.cfg,
            provider=self.provider,
            recorder=self.recorder,
            tracer=SessionTracer("s1"),
            write=self._write,
            clock_t0_ns=time.monotonic_ns(),
        )
        self.task: asyncio.Task[Any] | None = None

    async def _write(self, frame: pb.ServerFrame) -> None:
        await self._open_gate.wait()
        self.written.append(frame)

    def hold(self) -> None:
        """Block the caller writer (what the bridge queues stays queued)."""
        self._open_gate.clear()

    def release(self) -> None:
        self._open_gate.set()

    async def _iter(self) -> AsyncIterator[pb.ClientFrame]:
        while (frame := await self._requests.get()) is not None:
            yield frame

    async def __aenter__(self) -> SessionHarness:
        self.task = asyncio.create_task(self.session.run(self._iter()))
        await self.wait_written("ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        if self.task is not None and not self.task.done():
            self.send(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
            await asyncio.wait_for(self.task, DEFAULT_TIMEOUT_S)

    def send(self, frame: pb.ClientFrame) -> None:
        self._requests.put_nowait(frame)

    def send_audio(self, data: bytes) -> None:
        self.send(pb.ClientFrame(audio=pb.AudioFrame(data=data)))

    def kinds(self) -> list[str]:
        return [str(f.WhichOneof("frame")) for f in self.written]

    def of(self, kind: str) -> list[pb.ServerFrame]:
        return [f for f in self.written if f.WhichOneof("frame") == kind]

    async def wait_written(self, kind: str, count: int = 1) -> pb.ServerFrame:
        """The ``count``-th written frame of ``kind`` (waits for it)."""
        await until(lambda: len(self.of(kind)) >= count)
        return self.of(kind)[count - 1]

    def audio_ms(self, item_id: str) -> float:
        fmt = self.cfg.caller_output
        return sum(fmt.duration_ms(len(f.audio.data)) for f in self.of("audio") if f.audio.item_id == item_id)
