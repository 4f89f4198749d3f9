"""Test helpers for the ingress: an in-process ingress on port 0, tokens, a protocol-level test caller, and
the real ``rtvoice ingress`` as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from rtvoice.core.service import READY_PREFIX
from rtvoice.ingress.auth import mint_token
from rtvoice.ingress.limits import Limits
from rtvoice.ingress.server import IngressConfig, IngressServer

SECRET = b"test-secret-for-ingress-0123456789"
REPO = Path(__file__).resolve().parents[2]


def token(namespace: str = "default", name: str = "assistant", ttl_s: float = 600, **kw: Any) -> str:
    return mint_token(SECRET, namespace, name, ttl_s, **kw)


@contextlib.asynccontextmanager
async def running_ingress(bridge: str | None = None, **overrides: Any) -> AsyncIterator[IngressServer]:
    """An :class:`IngressServer` on 127.0.0.1:0 with the test secret; ``overrides`` are ``IngressConfig``
    fields, ``limits`` may be a dict of ``Limits`` fields."""
    limits = overrides.pop("limits", None)
    config = IngressConfig(bridge=bridge, auth_secret=SECRET, connect_timeout_s=2.0, ready_timeout_s=5.0)
    if isinstance(limits, dict):
        overrides["limits"] = replace(Limits(), **limits)
    config = replace(config, **overrides)
    server = IngressServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.drain(0)
        await server.close()


@dataclass
class ProtoCaller:
    """A protocol-level caller: sends events/audio, collects events and agent audio per item."""

    ws: ClientConnection
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: dict[str, bytearray] = field(default_factory=dict)
    current_item: str = ""
    _pending: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _reader: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for msg in self.ws:
                if isinstance(msg, bytes):
                    self.audio.setdefault(self.current_item, bytearray()).extend(msg)
                    continue
                event = json.loads(msg)
                if event["type"] == "audio.started":
                    self.current_item = event["item_id"]
                self.events.append(event)
                self._pending.put_nowait(event)
        self._pending.put_nowait({"type": "_closed"})

    async def send(self, event: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(event) if isinstance(event, dict) else event)

    async def expect(self, etype: str, timeout_s: float = 10.0, **match: Any) -> dict[str, Any]:
        """The next event of ``etype`` (earlier other events are skipped but kept in ``events``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no {etype} event within {timeout_s} s; got {[e['type'] for e in self.events]}"
                )
            event = await asyncio.wait_for(self._pending.get(), left)
            if event["type"] == "_closed":
                raise ConnectionError(f"closed before {etype}; got {[e['type'] for e in self.events]}")
            if event["type"] == etype and all(event.get(k) == v for k, v in match.items()):
                return event

    async def start(self, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "session.start", **fields})
        return await self.expect("session.started")

    async def closed(self, timeout_s: float = 10.0) -> None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout_s)

    def of_type(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == etype]

    async def aclose(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


@contextlib.asynccontextmanager
async def caller(url: str, tok: str | None = None, **kw: Any) -> AsyncIterator[ProtoCaller]:
    """Connect a :class:`ProtoCaller` with ``tok`` as a Bearer token."""
    headers = {"Authorization": f"Bearer {tok}"} if tok else None
    ws = await connect(url, additional_headers=headers, compression=None, open_timeout=10, **kw)
    c = ProtoCaller(ws)
    try:
        yield c
    finally:
        await c.aclose()


async def upgrade_status(url: str, headers: dict[str, str] | None = None, origin: str | None = None) -> int:
    """The HTTP status of a WebSocket upgrade to ``url`` (101 when it was accepted)."""
    try:
        ws = await connect(url, additional_headers=headers, origin=origin, open_timeout=5)  # type: ignore[arg-type]
    except InvalidStatus as err:
        return err.response.status_code
    await ws.close()
    return 101


@dataclass
class IngressProcess:
    proc: subprocess.Popen[str]
    port: int
    ready: dict[str, Any]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def start_ingress_process(tmp_path: Path, *args: str, timeout_s: float = 20.0) -> IngressProcess:
    """``python -m rtvoice ingress --port 0 ARGS`` with the test secret in the environment; waits for the
    RTVOICE_READY line. The caller terminates ``proc``."""
    env = dict(os.environ, RTVOICE_AUTH_SECRET=SECRET.decode(), PYTHONUNBUFFERED="1")
    err_path = tmp_path / "ingress.stderr"
    err = err_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtvoice", "ingress", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(READY_PREFIX):
            ready = json.loads(line[len(READY_PREFIX) :])
            return IngressProcess(proc, int(ready["port"]), ready, err_path)
    proc.kill()
    raise RuntimeError(f"ingress did not start: {err_path.read_text()[-2000:]}")
