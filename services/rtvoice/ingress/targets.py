"""Bridge targets: which addresses make up an agent's bridge, and resolving them.

A target is one of

- ``HOST:PORT`` — one endpoint (gRPC resolves the name itself, e.g. a ClusterIP Service);
- ``A:P1,B:P2,...`` — an explicit list of endpoints;
- ``dns:///NAME:PORT`` (or ``dns:NAME:PORT``) — every address ``NAME`` resolves to is one endpoint
  (a headless Service: one A/AAAA record per ready bridge pod), resolved with the system resolver
  (``getaddrinfo``) and refreshed periodically.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass


class TargetError(ValueError):
    """A bridge target that cannot be parsed; the message names it."""


@dataclass(frozen=True, slots=True)
class BridgeTarget:
    """A parsed target: ``static`` endpoints, or a ``dns_host``/``dns_port`` to resolve."""

    text: str
    static: tuple[str, ...] = ()
    dns_host: str = ""
    dns_port: int = 0

    @property
    def dynamic(self) -> bool:
        return bool(self.dns_host)


def _split_host_port(text: str, target: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"bad bridge address {text!r} in {target!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def parse_target(text: str) -> BridgeTarget:
    """Parse ``text`` (see the module docstring); raises :class:`TargetError`."""
    raw = text.strip()
    if raw.startswith("dns:"):
        rest = raw[len("dns:") :]
        if rest.startswith("//"):
            authority, slash, rest = rest[2:].partition("/")
            if not slash or authority:
                raise TargetError(f"bad bridge target {text!r}: use dns:///NAME:PORT (no DNS authority)")
        host, port = _split_host_port(rest, text)
        return BridgeTarget(raw, dns_host=host, dns_port=port)
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise TargetError(f"bad bridge target {text!r}: empty")
    for part in parts:
        _split_host_port(part, text)
    return BridgeTarget(raw, static=tuple(parts))


def _format(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


async def resolve(target: BridgeTarget) -> list[str]:
    """The endpoints (``host:port``) of ``target`` now, sorted; static targets as given.

    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve."""
    if not target.dynamic:
        return list(target.static)
    infos = await asyncio.get_running_loop().getaddrinfo(
        target.dns_host, target.dns_port, type=socket.SOCK_STREAM
    )
    return sorted({_format(str(info[4][0]), target.dns_port) for info in infos})
