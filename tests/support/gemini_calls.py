"""Drive a provider conversation in tests: collect its frames and speak real (synthesized) audio into it.

``FrameCollector(provider.events())`` reads frames in a background task; ``await col.wait_for(pred)``
returns the first matching frame (from a start index). ``await speak(provider.send_audio, "hello")``
streams espeak-ng speech as 20 ms PCM16 16 kHz frames, faster than real time, followed by silence so a
VAD ends the turn; it returns the number of bytes sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from rtvoice.v1 import frames_pb2 as pb
from tests.support.speech import silence_pcm16, synthesize_pcm16


class FrameCollector:
    """All frames of an ``events()`` iterator, in order; ends with the iterator."""

    def __init__(self, events: AsyncIterator[pb.ServerFrame]) -> None:
        self.frames: list[pb.ServerFrame] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(events))

    async def _run(self, events: AsyncIterator[pb.ServerFrame]) -> None:
        async for frame in events:
            async with self._changed:
                self.frames.append(frame)
                self._changed.notify_all()

    @property
    def done(self) -> bool:
        return self._task.done()

    async def wait_for(
        self, pred: Callable[[pb.ServerFrame], bool], *, start: int = 0, timeout_s: float = 15.0
    ) -> pb.ServerFrame:
        """The first frame at index >= ``start`` matching ``pred``; ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._changed:
            while True:
                for frame in self.frames[start:]:
                    if pred(frame):
                        return frame
                await self._changed.wait()

    async def wait_kind(self, kind: str, *, start: int = 0, timeout_s: float = 15.0) -> pb.ServerFrame:
        """The first frame of ``kind`` (a ``ServerFrame`` oneof name) at index >= ``start``."""
        return await self.wait_for(lambda f: f.WhichOneof("frame") == kind, start=start, timeout_s=timeout_s)

    def of(self, kind: str) -> list[pb.ServerFrame]:
        return [f for f in self.frames if f.WhichOneof("frame") == kind]

    def kinds(self) -> list[str]:
        return [str(f.WhichOneof("frame")) for f in self.frames]

    @property
    def audio_bytes(self) -> int:
        return sum(len(f.audio.data) for f in self.of("audio"))

    def transcript(self, role: int, *, final: bool) -> list[str]:
        """Texts of ``role``'s transcript frames, deltas (``final=False``) or finals."""
        frames = [f.transcript for f in self.of("transcript")]
        return [t.text for t in frames if t.role == role and t.final == final]

    async def finish(self, timeout_s: float = 5.0) -> None:
        """Wait for the iterator to end (after ``end``); cancel it after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        self._task.cancel()


async def eventually(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``cond`` (state of a fake server or a provider) until it holds; ``TimeoutError`` otherwise."""
    async with asyncio.timeout(timeout_s):
        while not cond():  # noqa: ASYNC110 - the state lives in another component
            await asyncio.sleep(0.01)


async def speak(
    send: Callable[[bytes], Awaitable[None]],
    text: str,
    *,
    sample_rate_hz: int = 16000,
    chunk_ms: int = 20,
    speed: float = 10.0,
    lead_silence_ms: int = 60,
    tail_silence_ms: int = 700,
) -> int:
    """Send ``text`` as speech in ``chunk_ms`` frames, ``speed`` × real time; returns the bytes sent."""
    pcm = (
        silence_pcm16(lead_silence_ms, sample_rate_hz)
        + synthesize_pcm16(text, sample_rate_hz)
        + silence_pcm16(tail_silence_ms, sample_rate_hz)
    )
    step = sample_rate_hz * chunk_ms // 1000 * 2
    for i in range(0, len(pcm), step):
        await send(pcm[i : i + step])
        await asyncio.sleep(chunk_ms / 1000 / speed)
    return len(pcm)
