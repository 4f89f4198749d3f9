"""Routing a caller at ``/v1/agents/{namespace}/{name}`` to that agent's realtime-bridge (issue #6).

Two modes: one bridge for every agent (``--bridge HOST:PORT``, local mode), or an address pattern
(``--bridge-address-pattern 'rtvoice-bridge-{name}.{namespace}.svc.cluster.local:50051'``, cluster mode).
gRPC channels are shared by the sessions of one address and closed when the last one leaves; connecting
waits for the channel to become ready at most ``connect_timeout_s``, so an unknown or unreachable agent is
a quick ``unavailable`` error, never a hang.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import grpc
import grpc.aio

from rtvoice.core.errors import RealtimeUnavailableError

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
    """Finds and connects an agent's bridge.

    Exactly one of ``bridge`` (``HOST:PORT``) or ``pattern`` (with ``{namespace}`` and/or ``{name}``) is
    given. :meth:`acquire` returns a ready ``grpc.aio.Channel`` or raises ``RealtimeUnavailableError``
    (code ``agent_unreachable``, retryable) after ``connect_timeout_s``; :meth:`release` gives it back.
    """

    def __init__(
        self, *, bridge: str | None = None, pattern: str | None = None, connect_timeout_s: float = 3.0
    ) -> None:
        if (bridge is None) == (pattern is None):
            raise ValueError("give exactly one of a bridge address or a bridge address pattern")
        if pattern is not None:
            try:
                pattern.format(namespace="ns", name="name")
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"bad bridge address pattern {pattern!r}: only {{namespace}} and {{name}} may appear"
                ) from err
        self.bridge = bridge
        self.pattern = pattern
        self.connect_timeout_s = connect_timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._users: dict[str, int] = {}

    def address_for(self, agent: AgentRef) -> str:
        """The ``host:port`` of ``agent``'s bridge."""
        if self.pattern is not None:
            return self.pattern.format(namespace=agent.namespace, name=agent.name)
        assert self.bridge is not None
        return self.bridge

    async def acquire(self, agent: AgentRef) -> tuple[str, grpc.aio.Channel]:
        """A ready channel to ``agent``'s bridge and its address; raises ``RealtimeUnavailableError``."""
        address = self.address_for(agent)
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(
                address, options=[("grpc.enable_retries", 0), ("grpc.max_receive_message_length", 8 << 20)]
            )
            self._channels[address] = channel
        self._users[address] = self._users.get(address, 0) + 1
        try:
            await asyncio.wait_for(channel.channel_ready(), self.connect_timeout_s)
        except (TimeoutError, grpc.aio.UsageError):
            await self.release(address)
            raise RealtimeUnavailableError(
                f"the bridge of agent {agent} cannot be reached (no answer within "
                f"{self.connect_timeout_s:g} s); the agent may not exist or is not running",
                code="agent_unreachable",
                retryable=True,
                fatal=True,
            ) from None
        return address, channel

    async def release(self, address: str) -> None:
        """One session no longer uses ``address``; the channel closes when nobody does."""
        users = self._users.get(address, 0) - 1
        if users > 0:
            self._users[address] = users
            return
        self._users.pop(address, None)
        channel = self._channels.pop(address, None)
        if channel is not None:
            await channel.close(None)

    async def close(self) -> None:
        """Close every channel."""
        channels = list(self._channels.values())
        self._channels.clear()
        self._users.clear()
        for ch in channels:
            await ch.close(None)
