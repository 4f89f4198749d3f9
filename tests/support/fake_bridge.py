"""A scripted ``RealtimeBridge`` gRPC server for ingress-only tests and benchmarks.

It stands in for the realtime-bridge in ingress-only tests (the real bridge needs a provider; the full
stack is exercised by the browser and stack tests): a real ``grpc.aio`` server on 127.0.0.1, port 0,
answering ``Converse`` like the bridge does — ``ready`` after ``start``, then agent frames in the caller's
output format. Default behaviour per session:

- caller audio: a simple energy detector (RMS above ``speech_rms``) emits ``speech_started``; 300 ms of
  quiet after speech emits ``speech_stopped`` and, with ``auto_reply``, a reply;
- ``text`` / ``end_of_turn``: a reply;
- a reply = ``response_started``, user transcript, ``reply_ms`` of a 440 Hz tone in 20 ms ``audio`` frames
  (sent as fast as gRPC takes them, like providers do, or paced with ``reply_pace``), assistant transcript,
  ``response_done`` {completed};
- caller speech or ``interrupt`` during a reply: ``clear_audio`` + ``response_done`` {cancelled};
- ``end``: answers ``end`` with the same reason.
``echo=True`` instead returns each caller audio frame at once as agent audio with bytes 8..16 replaced by
the bridge's ``time.monotonic_ns()`` at receipt (benchmarks). ``script`` replaces all of it with a coroutine
given the :class:`FakeBridgeSession`. Tests push any frame with :meth:`FakeBridgeSession.send`.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import numpy as np

from rtvoice.core.audio import AudioFormat, decode, encode
from rtvoice.core.end_reason import wire_name
from rtvoice.v1 import bridge_pb2_grpc
from rtvoice.v1 import frames_pb2 as pb

QUIET_TO_STOP_MS = 300


def tone(fmt: AudioFormat, duration_ms: int, freq_hz: float = 440.0, amplitude: float = 0.3) -> bytes:
    """``duration_ms`` of a sine in ``fmt`` (PCM16 or G.711 bytes)."""
    n = fmt.sample_rate_hz * duration_ms // 1000
    t = np.arange(n) / fmt.sample_rate_hz
    samples = (np.sin(2 * np.pi * freq_hz * t) * amplitude * 32767).astype(np.int16)
    return encode(samples, fmt)


@dataclass
class FakeBridgeSession:
    """One ``Converse`` stream as the fake bridge saw it."""

    start: pb.SessionStart
    received: list[pb.ClientFrame] = field(default_factory=list)
    outbox: asyncio.Queue[pb.ServerFrame | None] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str | None = None
    end_frame: pb.EndFrame | None = None
    audio_in_bytes: int = 0
    replies: int = 0
    reply_task: asyncio.Task[None] | None = None
    reply_item: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat.from_proto(self.start.output_format)

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat.from_proto(self.start.input_format)

    def send(self, frame: pb.ServerFrame) -> None:
        """Queue ``frame`` toward the ingress."""
        self.outbox.put_nowait(frame)

    def drop_stream(self) -> None:
        """End the response stream without an ``end`` frame (as a crashing bridge would)."""
        self.outbox.put_nowait(None)

    async def wait_frame(self, kind: str, timeout_s: float = 10.0) -> pb.ClientFrame:
        """The first received frame of ``kind``, waiting for it."""
        while not self.frames(kind):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout_s)
        return self.frames(kind)[0]

    def frames(self, kind: str) -> list[pb.ClientFrame]:
        """Received frames whose oneof is ``kind`` (``audio``, ``playback_mark``, ``steer`` ...)."""
        return [f for f in self.received if f.WhichOneof("frame") == kind]


class FakeBridge(bridge_pb2_grpc.RealtimeBridgeServicer):
    """See the module docstring. ``await start()`` binds; ``address`` is ``127.0.0.1:PORT``."""

    def __init__(
        self,
        *,
        auto_reply: bool = True,
        reply_ms: int = 600,
        reply_pace: float = 0.0,
        echo: bool = False,
        ready_delay_s: float = 0.0,
        refuse: pb.ErrorFrame | None = None,
        speech_rms: float = 500.0,
        script: Callable[[FakeBridgeSession], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.auto_reply = auto_reply
        self.reply_ms = reply_ms
        self.reply_pace = reply_pace
        self.echo = echo
        self.ready_delay_s = ready_delay_s
        self.refuse = refuse
        self.speech_rms = speech_rms
        self.script = script
        self.sessions: list[FakeBridgeSession] = []
        self.new_sessions: asyncio.Queue[FakeBridgeSession] = asyncio.Queue()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> FakeBridge:
        self._server = grpc.aio.server()
        bridge_pb2_grpc.add_RealtimeBridgeServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        await self._server.start()
        return self

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; live streams are cancelled (the ingress sees the bridge die)."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def next_session(self, timeout_s: float = 10.0) -> FakeBridgeSession:
        return await asyncio.wait_for(self.new_sessions.get(), timeout_s)

    async def Converse(
        self, request_iterator: AsyncIterator[pb.ClientFrame], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ServerFrame]:
        first = await anext(aiter(request_iterator))
        if first.WhichOneof("frame") != "start":
            yield pb.ServerFrame(
                error=pb.ErrorFrame(kind=pb.ERROR_KIND_PROTOCOL, code="no_start", fatal=True)
            )
            return
        session = FakeBridgeSession(start=first.start)
        self.sessions.append(session)
        self.new_sessions.put_nowait(session)
        if self.refuse is not None:
            yield pb.ServerFrame(error=self.refuse)
            yield pb.ServerFrame(end=pb.EndFrame(reason=pb.END_REASON_PROVIDER_ERROR))
            return
        if self.ready_delay_s:
            await asyncio.sleep(self.ready_delay_s)
        yield pb.ServerFrame(
            ready=pb.SessionReady(
                session_id=first.start.session_id, provider="fake", model="fake-1", voice="tone"
            )
        )
        tasks = [asyncio.create_task(self._consume(session, request_iterator))]
        if self.script is not None:
            tasks.append(asyncio.create_task(self.script(session)))
        try:
            while True:
                frame = await session.outbox.get()
                if frame is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "fake bridge dropped the stream")
                    return
                yield frame
                if frame.WhichOneof("frame") == "end":
                    return
        finally:
            for t in tasks:
                t.cancel()
            if session.reply_task is not None:
                session.reply_task.cancel()
            session.closed.set()

    async def _consume(self, session: FakeBridgeSession, requests: AsyncIterator[pb.ClientFrame]) -> None:
        speaking = False
        quiet_ms = 0.0
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            async for frame in requests:
                session.received.append(frame)
                session.changed.set()
                kind = frame.WhichOneof("frame")
                if kind == "audio":
                    session.audio_in_bytes += len(frame.audio.data)
                    if self.echo:
                        session.send(self._echo(frame.audio, session))
                        continue
                    if self.script is not None:
                        continue
                    fmt = session.input_format
                    samples = decode(frame.audio.data, fmt).astype(np.float64)
                    loud = samples.size > 0 and float(np.sqrt(np.mean(samples**2))) > self.speech_rms
                    if loud:
                        quiet_ms = 0.0
                        if not speaking:
                            speaking = True
                            self._barge_in(session)
                            session.send(pb.ServerFrame(speech_started=pb.SpeechStarted(item_id="in")))
                    elif speaking:
                        quiet_ms += fmt.duration_ms(len(frame.audio.data))
                        if quiet_ms >= QUIET_TO_STOP_MS:
                            speaking = False
                            session.send(pb.ServerFrame(speech_stopped=pb.SpeechStopped(item_id="in")))
                            if self.auto_reply:
                                self._reply(session, "(speech)")
                elif kind in ("text", "end_of_turn") and self.script is None:
                    self._reply(session, frame.text.text if kind == "text" else "(turn)")
                elif kind == "interrupt" and self.script is None:
                    self._barge_in(session)
                elif kind == "end":
                    session.end_reason = wire_name(frame.end.reason)
                    session.end_frame = frame.end
                    session.send(pb.ServerFrame(end=pb.EndFrame(reason=frame.end.reason)))
                    return

    def _echo(self, audio: pb.AudioFrame, session: FakeBridgeSession) -> pb.ServerFrame:
        data = bytearray(audio.data)
        if len(data) >= 16:
            data[8:16] = struct.pack("<q", time.monotonic_ns())
        out = pb.AudioFrame(
            data=bytes(data), format=session.start.output_format, sequence=audio.sequence, item_id="echo"
        )
        return pb.ServerFrame(audio=out)

    def _barge_in(self, session: FakeBridgeSession) -> None:
        task = session.reply_task
        if task is not None and not task.done():
            task.cancel()
            session.send(pb.ServerFrame(clear_audio=pb.ClearAudio(item_id=session.reply_item)))
            session.send(
                pb.ServerFrame(
                    response_done=pb.ResponseDone(
                        response_id=f"resp_{session.replies}",
                        status="cancelled",
                        status_reason="turn_detected",
                    )
                )
            )

    def _reply(self, session: FakeBridgeSession, heard: str) -> None:
        self._barge_in(session)
        session.replies += 1
        session.reply_item = f"item_{session.replies}"
        session.reply_task = asyncio.create_task(self._reply_frames(session, heard))

    async def _reply_frames(self, session: FakeBridgeSession, heard: str) -> None:
        n = session.replies
        item = session.reply_item
        fmt = session.output_format
        session.send(pb.ServerFrame(response_started=pb.ResponseStarted(response_id=f"resp_{n}")))
        session.send(
            pb.ServerFrame(
                transcript=pb.TranscriptFrame(role=pb.ROLE_USER, item_id=f"user_{n}", text=heard, final=True)
            )
        )
        audio = tone(fmt, self.reply_ms)
        step = fmt.bytes_for_ms(20)
        for seq, offset in enumerate(range(0, len(audio), step), start=1):
            chunk = audio[offset : offset + step]
            session.send(
                pb.ServerFrame(
                    audio=pb.AudioFrame(data=chunk, format=fmt.to_proto(), sequence=seq, item_id=item)
                )
            )
            await asyncio.sleep(0.02 * self.reply_pace)
        session.send(
            pb.ServerFrame(
                transcript=pb.TranscriptFrame(
                    role=pb.ROLE_ASSISTANT, item_id=item, text=f"you said {heard}", final=True
                )
            )
        )
        session.send(
            pb.ServerFrame(response_done=pb.ResponseDone(response_id=f"resp_{n}", status="completed"))
        )
