"""A bridge's load: admission (``--max-sessions``, event-loop lag), the health status it implies, and
its Prometheus metrics.

While the bridge is full or draining, ``grpc.health.v1`` answers ``NOT_SERVING`` for ``""`` and the
bridge service (the ingress's placement watches it and stops sending new sessions); once below the
limit again, ``SERVING``. A session that still arrives is refused with :class:`CapacityFullError`
(``full``, ``retry_after_ms``) before its ``SessionStart`` is read, so the ingress can place it on
another bridge under the same session id. Live sessions are never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc.aio
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2

from rtvoice.core.capacity import DRAINING_CODE, CapacityGate
from rtvoice.core.errors import RealtimeError
from rtvoice.core.metrics import FirstAudioClock, service_metrics
from rtvoice.v1 import frames_pb2 as pb

Write = Callable[[pb.ServerFrame], Awaitable[None]]


class BridgeLoad:
    """Admission, health and metrics of one bridge server (see the module docstring).

    ``is_draining()`` tells whether the server drains (health stays ``NOT_SERVING`` then)."""

    def __init__(self, max_sessions: int, max_loop_lag_ms: float, is_draining: Callable[[], bool]) -> None:
        self.metrics = service_metrics("bridge")
        self.gate = CapacityGate(max_sessions, max_loop_lag_ms, on_change=lambda _full: self.sync_health())
        self.gate.on_lag = self.metrics.loop_lag_ms.set
        self.metrics.max_sessions.set(max_sessions)
        self._is_draining = is_draining
        self._health: health_aio.HealthServicer | None = None
        self._names: tuple[str, ...] = ()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, health: health_aio.HealthServicer, names: Iterable[str]) -> None:
        """Serve the health status for ``names`` from now on and start the loop-lag timer."""
        self._health, self._names = health, tuple(names)
        self.gate.lag.start()

    async def stop(self) -> None:
        await self.gate.lag.stop()
        for task in list(self._tasks):
            await task

    def refusal(self) -> RealtimeError | None:
        """The typed ``full`` refusal for a new session now, or ``None``."""
        err = self.gate.refusal()
        if err is not None:
            self.metrics.refused(err.code)
        return err

    def refused_draining(self) -> None:
        self.metrics.refused(DRAINING_CODE)

    def admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Count the stream of ``context`` as a session until its RPC is done."""
        self.gate.admit()
        context.add_done_callback(lambda _ctx: self.gate.release())

    def sync_health(self) -> None:
        """Publish SERVING / NOT_SERVING for the current draining and full state (in a task)."""
        if self._health is None:
            return
        task = asyncio.get_running_loop().create_task(self._publish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self) -> None:
        assert self._health is not None
        serving = not (self._is_draining() or self.gate.full)
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self._names:
            await self._health.set(name, status)

    def meter(
        self, write: Write, frames: AsyncIterator[pb.ClientFrame]
    ) -> tuple[Write, AsyncIterator[pb.ClientFrame]]:
        """``write`` and ``frames`` of one session, counting frames, errors and first-audio latency."""
        clock = FirstAudioClock(self.metrics.first_audio_ms)
        metrics = self.metrics

        async def metered_write(frame: pb.ServerFrame) -> None:
            await write(frame)
            metrics.frames_out.inc()
            clock.server(frame)
            if frame.WhichOneof("frame") == "error":
                metrics.error(frame.error.kind)

        return metered_write, _MeteredFrames(frames, clock)


class _MeteredFrames:
    """Forwards the caller's frames one by one, counting them (a plain iterator, not a generator, so a
    cancelled read leaves the stream usable exactly as the gRPC iterator would)."""

    def __init__(self, frames: AsyncIterator[pb.ClientFrame], clock: FirstAudioClock) -> None:
        self._it = aiter(frames)
        self._clock = clock
        self._counter = service_metrics("bridge").frames_in

    def __aiter__(self) -> _MeteredFrames:
        return self

    async def __anext__(self) -> pb.ClientFrame:
        frame = await anext(self._it)
        self._counter.inc()
        self._clock.client(frame)
        return frame
