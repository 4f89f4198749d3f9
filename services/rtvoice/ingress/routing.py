"""Routing a caller at ``/v1/agents/{namespace}/{name}`` to one of that agent's realtime-bridges.

Three ways to name an agent's bridges (exactly one): ``--bridge TARGET`` (every agent, local mode),
``--bridge-address-pattern`` (a target with ``{namespace}`` and ``{name}``), or
``--bridge-cluster-domain DOMAIN`` (the agent's headless Service,
:func:`rtvoice.core.addresses.bridge_address`). A target is ``HOST:PORT``, a comma list of them, or
``dns:///NAME:PORT`` (every address of NAME is one bridge; see :mod:`rtvoice.ingress.targets`).

Each target has an :class:`~rtvoice.ingress.endpoints.EndpointPool` (one gRPC channel and health watch
per endpoint); :meth:`BridgeRouter.place` puts a new session on the least-loaded ready endpoint and moves
on to the next when a bridge refuses with ``draining`` / ``full`` (:mod:`rtvoice.ingress.placement`).
Pools nobody used for ``idle_close_s`` are closed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rtvoice.core.addresses import bridge_address
from rtvoice.core.errors import RealtimeUnavailableError
from rtvoice.core.internal_auth import InternalCredentials, call_metadata
from rtvoice.ingress.endpoints import Endpoint, EndpointPool
from rtvoice.ingress.placement import Placed, place
from rtvoice.ingress.targets import BridgeTarget, TargetError, parse_target
from rtvoice.v1 import frames_pb2 as pb

# RFC 1123 DNS labels, as Kubernetes names and namespaces.
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
AGENT_PATH = re.compile(rf"/v1/agents/(?P<namespace>{_LABEL})/(?P<name>{_LABEL})")


@dataclass(frozen=True, slots=True)
class AgentRef:
    """An agent: Kubernetes ``namespace`` and ``name`` (DNS labels)."""

    namespace: str
    name: str

    @property
    def path(self) -> str:
        return f"/v1/agents/{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_agent_path(path: str) -> AgentRef | None:
    """``/v1/agents/ns/name`` → ``AgentRef``; ``None`` for other paths or names that are not DNS labels."""
    m = AGENT_PATH.fullmatch(path)
    return AgentRef(m["namespace"], m["name"]) if m else None


class BridgeRouter:
    """Finds an agent's bridges and places sessions on them (see the module docstring).

    ``credentials`` (the internal token) go with every ``Converse`` call. Raises ``ValueError`` for a
    bad combination, pattern or target.
    """

    def __init__(
        self,
        *,
        bridge: str | None = None,
        pattern: str | None = None,
        cluster_domain: str | None = None,
        connect_timeout_s: float = 3.0,
        credentials: InternalCredentials | None = None,
        refresh_s: float = 5.0,
        idle_close_s: float = 60.0,
    ) -> None:
        if sum(x is not None for x in (bridge, pattern, cluster_domain)) != 1:
            raise ValueError("give exactly one of a bridge target, an address pattern or a cluster domain")
        try:
            if pattern is not None:
                try:
                    pattern.format(namespace="ns", name="name")
                except (KeyError, IndexError, ValueError) as err:
                    raise ValueError(
                        f"bad bridge address pattern {pattern!r}: only {{namespace}} and {{name}} may "
                        f"appear ({err})"
                    ) from err
            elif bridge is not None:
                parse_target(bridge)
            else:
                bridge_address("agent", "ns", cluster_domain or "")
        except TargetError as err:
            raise ValueError(str(err)) from err
        self.bridge = bridge
        self.pattern = pattern
        self.cluster_domain = cluster_domain
        self.connect_timeout_s = connect_timeout_s
        self.credentials = credentials
        self.refresh_s = refresh_s
        self.idle_close_s = idle_close_s
        self.pools: dict[str, EndpointPool] = {}

    def address_for(self, agent: AgentRef) -> str:
        """The bridge target of ``agent`` (``HOST:PORT``, a list, or ``dns:///NAME:PORT``)."""
        if self.pattern is not None:
            return self.pattern.format(namespace=agent.namespace, name=agent.name)
        if self.cluster_domain is not None:
            return bridge_address(agent.name, agent.namespace, self.cluster_domain)
        assert self.bridge is not None
        return self.bridge

    def _pool(self, agent: AgentRef) -> EndpointPool:
        target = self.address_for(agent)
        pool = self.pools.get(target)
        if pool is None:
            parsed: BridgeTarget = parse_target(target)
            pool = self.pools[target] = EndpointPool(parsed, self.refresh_s)
        return pool

    async def place(self, agent: AgentRef, start: pb.SessionStart, ready_timeout_s: float) -> Placed:
        """Start ``start`` on one of ``agent``'s bridges; see :func:`rtvoice.ingress.placement.place`
        for the result and the errors (all ``RealtimeError``)."""
        await self._close_idle()
        try:
            pool = self._pool(agent)
        except TargetError as err:
            raise RealtimeUnavailableError(
                f"agent {agent} has no usable bridge address: {err}",
                code="agent_unreachable",
                retryable=False,
                fatal=True,
            ) from None
        metadata: Sequence[tuple[str, str]] | None = call_metadata(self.credentials)
        try:
            return await place(
                pool,
                start,
                agent=str(agent),
                metadata=metadata,
                connect_timeout_s=self.connect_timeout_s,
                ready_timeout_s=ready_timeout_s,
            )
        finally:
            if pool.live == 0 and (pool.last_error or pool.unreachable()):
                await self._drop(pool)

    def saturated(self, agent: AgentRef) -> bool:
        """Whether every known bridge of ``agent`` is draining, full or down (a new session would be
        refused); ``False`` when nothing is known yet."""
        pool = self.pools.get(self.address_for(agent))
        return pool is not None and pool.saturated()

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint of every pool (for status and tests)."""
        return [ep for pool in self.pools.values() for ep in pool.endpoints.values()]

    async def _drop(self, pool: EndpointPool) -> None:
        if self.pools.get(pool.target.text) is pool:
            del self.pools[pool.target.text]
        await pool.close()

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for pool in list(self.pools.values()):
            if pool.live == 0 and now - pool.last_used > self.idle_close_s:
                await self._drop(pool)
            else:
                await pool.reap()

    async def close(self) -> None:
        """Close every channel."""
        pools = list(self.pools.values())
        self.pools.clear()
        for pool in pools:
            await pool.close()
