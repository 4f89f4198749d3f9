"""Placing one caller session on a bridge endpoint: open ``Converse``, send ``SessionStart``, wait for
``ready`` — and when the bridge refuses with ``draining`` or ``full`` (or cannot be reached), try the next
endpoint, invisibly to the caller, while the connect budget lasts.

A bridge refuses before it reads ``SessionStart`` (``ErrorFrame`` + ``EndFrame(END_REASON_BRIDGE_REFUSED)``),
so a refused start is retried with the same session id. When a stream fails without any answer (the
bridge may have seen the start and died), the retry uses a fresh session id so the recorder never gets
two streams claiming one session.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import grpc
import grpc.aio

from rtvoice.core.capacity import DEFAULT_RETRY_AFTER_MS, DRAINING_CODE, FULL_CODE, CapacityFullError
from rtvoice.core.errors import RealtimeError, RealtimeUnavailableError
from rtvoice.ingress.endpoints import Endpoint, EndpointPool
from rtvoice.v1 import bridge_pb2_grpc
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger("rtvoice.ingress.placement")

Call: TypeAlias = "grpc.aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame]"
RETRY_CODES = frozenset({FULL_CODE, DRAINING_CODE})
#: The error code of a bridge that refuses this ingress's internal token (a deployment fault).
INTERNAL_AUTH_CODE = "internal_auth"


@dataclass
class Placed:
    """A session's stream on ``endpoint``: ``ready`` when the bridge started it; otherwise ``end`` is the
    bridge's own end (a refusal that is not about capacity, e.g. bad settings). ``early`` are frames the
    bridge sent before (errors to relay). ``session_id`` is the id the bridge knows the session by."""

    endpoint: Endpoint
    call: Call
    session_id: str
    ready: pb.SessionReady | None = None
    end: pb.EndFrame | None = None
    early: list[pb.ServerFrame] = field(default_factory=list)
    _released: bool = False

    def release(self) -> None:
        """The session is over: it no longer counts on its endpoint (idempotent)."""
        if not self._released:
            self._released = True
            self.endpoint.live -= 1


class _Refused(Exception):
    """One endpoint could not take the session; ``fresh_id``: retry under a new session id."""

    def __init__(self, why: str, fresh_id: bool = False) -> None:
        super().__init__(why)
        self.fresh_id = fresh_id


@dataclass(slots=True)
class Attempts:
    """What the endpoints said, for the final error when none took the session."""

    full_retry_ms: list[int] = field(default_factory=list)
    draining: int = 0
    unreachable: list[str] = field(default_factory=list)


async def place(
    pool: EndpointPool,
    start: pb.SessionStart,
    *,
    agent: str,
    metadata: Sequence[tuple[str, str]] | None,
    connect_timeout_s: float,
    ready_timeout_s: float,
) -> Placed:
    """Start ``start`` on the best endpoint of ``pool`` (see the module docstring).

    Raises :class:`CapacityFullError` (code ``full``, ``retry_after_ms``) when every endpoint is full or
    draining, ``RealtimeUnavailableError`` ``agent_unreachable`` when none answers within
    ``connect_timeout_s``, ``bridge_timeout`` when the chosen bridge is not ready within
    ``ready_timeout_s``, ``internal_auth`` when the bridge refuses this ingress's token, and
    ``bridge_lost`` for other stream failures."""
    await pool.refresh()
    deadline = time.monotonic() + connect_timeout_s
    tried: set[str] = set()
    seen = Attempts()
    while True:
        ep = pool.pick(tried)
        left = deadline - time.monotonic()
        if ep is None or left <= 0:
            break
        tried.add(ep.address)
        ep.live += 1
        try:
            return await _attempt(ep, start, metadata, left, ready_timeout_s, agent, seen)
        except _Refused as refused:
            ep.live -= 1
            log.info("session %s: bridge %s did not take it (%s)", start.session_id, ep.address, refused)
            if refused.fresh_id:
                start.session_id = uuid.uuid4().hex
        except BaseException:
            ep.live -= 1
            raise
    raise _no_endpoint(pool, agent, seen, connect_timeout_s)


def _no_endpoint(pool: EndpointPool, agent: str, seen: Attempts, budget_s: float) -> RealtimeError:
    if seen.full_retry_ms or seen.draining or pool.saturated():
        retry = max(seen.full_retry_ms, default=DEFAULT_RETRY_AFTER_MS)
        return CapacityFullError(
            f"every bridge of agent {agent} is full or draining; retry in {retry} ms", retry_after_ms=retry
        )
    detail = pool.last_error or ("; ".join(seen.unreachable) if seen.unreachable else "no endpoint")
    return RealtimeUnavailableError(
        f"the bridge of agent {agent} cannot be reached (no answer within {budget_s:g} s: {detail}); "
        "the agent may not exist or is not running",
        code="agent_unreachable",
        retryable=True,
        fatal=True,
    )


async def _attempt(
    ep: Endpoint,
    start: pb.SessionStart,
    metadata: Sequence[tuple[str, str]] | None,
    connect_left_s: float,
    ready_timeout_s: float,
    agent: str,
    seen: Attempts,
) -> Placed:
    try:
        await asyncio.wait_for(ep.channel.channel_ready(), connect_left_s)
    except (TimeoutError, grpc.aio.UsageError):
        ep.unreachable()
        seen.unreachable.append(f"{ep.address} not connected")
        raise _Refused("not connected") from None
    call: Call = bridge_pb2_grpc.RealtimeBridgeStub(ep.channel).Converse(metadata=metadata)
    placed = Placed(ep, call, start.session_id)
    try:
        await call.write(pb.ClientFrame(start=start))
        await asyncio.wait_for(_until_ready(placed), ready_timeout_s)
    except TimeoutError:
        call.cancel()
        raise RealtimeUnavailableError(
            f"the bridge of agent {agent} did not get ready within {ready_timeout_s:g} s",
            code="bridge_timeout",
            retryable=True,
            fatal=True,
        ) from None
    except grpc.aio.AioRpcError as err:
        call.cancel()
        if _capacity_refusal(placed) is None:  # a refusal whose stream then broke is still a refusal
            _rpc_failed(err, ep, placed, agent, seen)
    except BaseException:
        call.cancel()
        raise
    refusal = _capacity_refusal(placed)
    if refusal is not None:
        call.cancel()
        code, retry_ms = refusal
        if code == FULL_CODE:
            ep.refused_full(retry_ms)
            seen.full_retry_ms.append(retry_ms)
        else:
            ep.refused_draining()
            seen.draining += 1
        raise _Refused(code)
    return placed


def _rpc_failed(err: grpc.aio.AioRpcError, ep: Endpoint, placed: Placed, agent: str, seen: Attempts) -> None:
    code = err.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        log.error("bridge %s refused this ingress's internal token: %s", ep.address, err.details())
        raise RealtimeUnavailableError(
            f"the bridge of agent {agent} refused the ingress (internal authentication failed)",
            code=INTERNAL_AUTH_CODE,
            retryable=False,
            fatal=True,
        ) from None
    if not placed.early:
        # No answer at all: nothing reached a caller, so another bridge may take the call. (A bridge that
        # refuses before reading can also reset the stream under the refusal: INTERNAL, not UNAVAILABLE.)
        if code == grpc.StatusCode.UNAVAILABLE:
            ep.unreachable()
        seen.unreachable.append(f"{ep.address} {code.name.lower()}")
        raise _Refused(f"stream failed: {code.name.lower()}", fresh_id=True) from None
    raise RealtimeUnavailableError(
        f"lost the connection to the bridge of agent {agent} ({code.name.lower()})",
        code="bridge_lost",
        retryable=True,
        fatal=True,
    ) from None


async def _until_ready(placed: Placed) -> None:
    """Read frames until ``ready`` or ``end``; the rest go to ``placed.early``."""
    while True:
        frame = await placed.call.read()
        if not isinstance(frame, pb.ServerFrame):
            if not placed.early:
                raise _Refused("closed the stream without a word", fresh_id=True)
            raise RealtimeUnavailableError(
                "the bridge closed the session before it was ready",
                code="bridge_lost",
                retryable=True,
                fatal=True,
            )
        kind = frame.WhichOneof("frame")
        if kind == "ready":
            placed.ready = frame.ready
            return
        if kind == "end":
            placed.end = frame.end
            return
        placed.early.append(frame)


def _capacity_refusal(placed: Placed) -> tuple[str, int] | None:
    """``(code, retry_after_ms)`` when the bridge refused the session for capacity (full/draining)."""
    if placed.ready is not None:
        return None
    for frame in placed.early:
        if frame.WhichOneof("frame") == "error" and frame.error.code in RETRY_CODES:
            return frame.error.code, frame.error.retry_after_ms or DEFAULT_RETRY_AFTER_MS
    return None
