"""Where a bridge finds its recorders: one address, a comma list, or a headless-Service DNS name.

``--recorder-target`` forms (see docs/recording.md, "Several recorders"):

- ``host:port`` — one recorder (gRPC resolves the name itself);
- ``host1:port,host2:port,...`` — a fixed list of instances;
- ``dns:///name:port`` — every address the name resolves to is one instance (a Kubernetes headless
  Service over a recorder StatefulSet), re-resolved on every reconnect.

Sessions are spread over the instances by rendezvous hashing of the session id (:meth:`ranked`): each
session has a stable first choice, and when an instance disappears only its own sessions move.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket

DNS_SCHEME = "dns:///"
#: gRPC metadata key of a resumed Record stream: the recorder id the link expects to hold the session.
EXPECTED_RECORDER_METADATA = "rtvoice-recorder-id"


class RecorderTargetError(ValueError):
    """A ``--recorder-target`` that cannot be parsed (the message shows the accepted forms)."""


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RecorderTargetError(
            f"recorder target {address!r}: expected host:port, a comma list of them, or dns:///name:port"
        )
    return host.strip("[]"), int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RecorderTargets:
    """The recorder instances behind one target spec; raises :class:`RecorderTargetError` when malformed."""

    def __init__(self, spec: str) -> None:
        self.spec = spec.strip()
        self._dns: tuple[str, int] | None = None
        self._static: list[str] = []
        if self.spec.startswith(DNS_SCHEME):
            self._dns = _split_host_port(self.spec[len(DNS_SCHEME) :])
        else:
            parts = [p.strip() for p in self.spec.split(",") if p.strip()]
            if not parts:
                raise RecorderTargetError("empty recorder target")
            for p in parts:
                _split_host_port(p)
            self._static = parts

    @property
    def several(self) -> bool:
        """True when the spec can name more than one instance (a list or a DNS name)."""
        return self._dns is not None or len(self._static) > 1

    async def addresses(self) -> list[str]:
        """The instances' ``host:port`` addresses now (DNS: resolved again; [] when it fails)."""
        if self._dns is None:
            return list(self._static)
        host, port = self._dns
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return []
        return sorted({_join(str(info[4][0]), port) for info in infos})

    @staticmethod
    def ranked(addresses: list[str], session_id: str) -> list[str]:
        """``addresses`` in this session's order of preference (rendezvous hashing; stable per session)."""

        def score(addr: str) -> bytes:
            return hashlib.sha256(f"{session_id}\0{addr}".encode()).digest()

        return sorted(addresses, key=score, reverse=True)
