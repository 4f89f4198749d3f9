"""The bridge endpoints of one target: a gRPC channel, a live-session count and a health watch each.

:class:`EndpointPool` keeps the endpoints of a :class:`~rtvoice.ingress.targets.BridgeTarget` (re-resolved
every ``refresh_s`` for ``dns:///`` targets) and :meth:`EndpointPool.pick` chooses where a new session
goes: the ready endpoint with the fewest live sessions of this ingress, round-robin among equals.

An endpoint is *ready* unless its ``grpc.health.v1.Health/Watch`` stream says ``NOT_SERVING`` (the bridge
is draining or full), the stream is broken (the bridge is gone), or it refused a session with ``full``
less than ``retry_after_ms`` ago (for bridges without the health service, which count as serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rtvoice.ingress.targets import BridgeTarget, resolve
from rtvoice.v1 import bridge_pb2

log = logging.getLogger("rtvoice.ingress.endpoints")

BRIDGE_SERVICE = bridge_pb2.DESCRIPTOR.services_by_name["RealtimeBridge"].full_name
CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", 8 << 20),
    # A restarted bridge on the same address is found again within ~1 s, not gRPC's default 2 min.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
_WATCH_BACKOFF_S = (0.1, 1.0)


class Health(enum.Enum):
    UNKNOWN = "unknown"  # no answer yet: try it
    SERVING = "serving"
    NOT_SERVING = "not_serving"  # draining or full
    DOWN = "down"  # the watch stream broke: the bridge is gone or restarting
    NO_HEALTH = "no_health"  # the bridge does not serve grpc.health.v1: count it as serving


class Endpoint:
    """One bridge address. ``live`` counts this ingress's sessions on it (placements in progress too).
    ``watch_health=False`` leaves :attr:`health` to the caller (tests of the placement policy)."""

    def __init__(self, address: str, watch_health: bool = True) -> None:
        self.address = address
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.live = 0
        self.health = Health.UNKNOWN
        self.full_until = 0.0
        self.removed = False
        self._watch: asyncio.Task[None] | None = None
        if watch_health:
            self._watch = asyncio.get_running_loop().create_task(
                self._watch_health(), name=f"health-{address}"
            )

    def ready(self, now: float | None = None) -> bool:
        if self.health not in (Health.UNKNOWN, Health.SERVING, Health.NO_HEALTH):
            return False
        return (time.monotonic() if now is None else now) >= self.full_until

    def refused_full(self, retry_after_ms: int) -> None:
        """The bridge answered ``full``: skip it for ``retry_after_ms`` (or until health says SERVING)."""
        self.full_until = time.monotonic() + retry_after_ms / 1000.0
        if self.health is Health.SERVING:
            self.health = Health.NOT_SERVING

    def refused_draining(self) -> None:
        self.health = Health.NOT_SERVING

    def unreachable(self) -> None:
        self.health = Health.DOWN

    def _set(self, health: Health) -> None:
        if health is not self.health:
            log.info("bridge %s: %s -> %s", self.address, self.health.value, health.value)
        self.health = health
        if health is Health.SERVING:
            self.full_until = 0.0

    async def _watch_health(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        backoff = _WATCH_BACKOFF_S[0]
        while True:
            try:
                call = stub.Watch(health_pb2.HealthCheckRequest(service=BRIDGE_SERVICE))
                async for reply in call:
                    backoff = _WATCH_BACKOFF_S[0]
                    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                    self._set(Health.SERVING if serving else Health.NOT_SERVING)
                self._set(Health.DOWN)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    self._set(Health.NO_HEALTH)
                    return
                if err.code() == grpc.StatusCode.NOT_FOUND:  # health served, bridge service unknown
                    self._set(Health.NOT_SERVING)
                else:
                    self._set(Health.DOWN)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _WATCH_BACKOFF_S[1])

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        await self.channel.close(None)


class EndpointPool:
    """The endpoints of one target (see the module docstring). Call :meth:`refresh` before :meth:`pick`
    (it resolves once, then at most every ``refresh_s``); :meth:`close` closes every channel."""

    def __init__(self, target: BridgeTarget, refresh_s: float = 5.0) -> None:
        self.target = target
        self.refresh_s = refresh_s
        self.endpoints: dict[str, Endpoint] = {}
        self.last_error: str | None = None
        self.last_used = time.monotonic()
        self._resolved_at = float("-inf")
        self._rr = 0
        self._lock = asyncio.Lock()

    @property
    def live(self) -> int:
        return sum(ep.live for ep in self.endpoints.values())

    async def refresh(self, force: bool = False) -> None:
        """Re-resolve the target when due (or ``force``); endpoints that left are closed once idle.
        A failed resolution keeps the known endpoints and sets :attr:`last_error`."""
        self.last_used = time.monotonic()
        if not force and time.monotonic() - self._resolved_at < self.refresh_s:
            return
        async with self._lock:
            if not force and time.monotonic() - self._resolved_at < self.refresh_s:
                return
            try:
                addresses = await resolve(self.target)
            except OSError as err:
                self.last_error = f"{self.target.dns_host} does not resolve ({err})"
                self._resolved_at = time.monotonic() - self.refresh_s + min(1.0, self.refresh_s)
                return
            self._resolved_at = time.monotonic()
            self.last_error = None if addresses else f"{self.target.text} has no addresses"
            self._apply(addresses)
        await self.reap()

    def _apply(self, addresses: list[str]) -> None:
        for address in addresses:
            ep = self.endpoints.get(address)
            if ep is None:
                self.endpoints[address] = Endpoint(address)
            else:
                ep.removed = False
        for address, ep in self.endpoints.items():
            if address not in addresses:
                ep.removed = True

    async def reap(self) -> None:
        """Close endpoints that left the target and hold no session."""
        gone = [ep for ep in self.endpoints.values() if ep.removed and ep.live == 0]
        for ep in gone:
            del self.endpoints[ep.address]
            await ep.close()

    def pick(self, exclude: set[str]) -> Endpoint | None:
        """The ready endpoint (not in ``exclude``) with the fewest live sessions; round-robin on ties.
        When none is ready, a *down* one (it may just have come back; connecting tells)."""
        now = time.monotonic()
        ordered = [ep for ep in self.endpoints.values() if not ep.removed]
        if not ordered:
            return None
        start = self._rr % len(ordered)
        ordered = ordered[start:] + ordered[:start]
        untried = [ep for ep in ordered if ep.address not in exclude]
        candidates = [ep for ep in untried if ep.ready(now)]
        if not candidates:
            candidates = [ep for ep in untried if ep.health is Health.DOWN]
        if not candidates:
            return None
        best = min(candidates, key=lambda ep: ep.live)  # min keeps the first of equals: rotation order
        self._rr += 1
        return best

    def saturated(self) -> bool:
        """Endpoints are known, none is ready and at least one said it is draining or full (the others
        are down): a new session would be refused."""
        eps = [ep for ep in self.endpoints.values() if not ep.removed]
        now = time.monotonic()
        if not eps or any(ep.ready(now) for ep in eps):
            return False
        return any(ep.health is Health.NOT_SERVING or ep.full_until > now for ep in eps)

    def unreachable(self) -> bool:
        """No endpoint is known, or every one is down (the target is wrong or nothing runs there)."""
        return all(ep.health is Health.DOWN for ep in self.endpoints.values())

    async def close(self) -> None:
        eps = list(self.endpoints.values())
        self.endpoints.clear()
        for ep in eps:
            await ep.close()
