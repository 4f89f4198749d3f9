"""Several real rtvoice service processes on loopback, for placement, load and security tests.

``start_service("bridge", [...], tmp_path)`` runs ``python -m rtvoice bridge ...`` and returns once its
``RTVOICE_READY`` line arrived (:class:`ServiceProcess`: ``port``, ``metrics_port``, ``ready``, logs).
:class:`Cluster` starts the offline engine, a recorder and N bridges of the phrases agent, all sharing one
internal token, with ``--metrics-port 0``; :func:`scrape` reads a ``/metrics`` page into a dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rtvoice.core.service import READY_PREFIX
from rtvoice.core.settings import load_agent_file

ROOT = Path(__file__).resolve().parents[2]
PHRASES_AGENT = ROOT / "examples" / "agent-phrases.yaml"


@dataclass
class ServiceProcess:
    """One running ``rtvoice <service>`` process."""

    service: str
    argv: list[str]
    proc: asyncio.subprocess.Process
    ready: dict[str, Any]
    log_path: Path
    _pump: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.ready["port"])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ready['metrics_port']}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit code (SIGKILL after ``timeout_s``)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pump, 5)
        assert self.proc.returncode is not None
        return self.proc.returncode


async def start_service(
    service: str,
    args: list[str],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 90.0,
    name: str | None = None,
) -> ServiceProcess:
    """Start ``python -m rtvoice SERVICE ARGS`` and wait for its ready line; raises ``RuntimeError`` with
    the log when it exits or stays silent."""
    log_path = log_dir / f"{name or service}.log"
    argv = [sys.executable, "-m", "rtvoice", service, *args]
    log = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=ROOT,
    )
    assert proc.stdout is not None
    try:
        ready = await asyncio.wait_for(_ready_line(proc.stdout), ready_timeout_s)
    except (TimeoutError, EOFError):
        proc.kill()
        await proc.wait()
        log.close()
        raise RuntimeError(
            f"{service} did not start:\n{log_path.read_text(errors='replace')[-3000:]}"
        ) from None
    sp = ServiceProcess(service, argv, proc, ready, log_path)
    sp._pump = asyncio.create_task(_drain(proc.stdout, log))
    return sp


async def _ready_line(stdout: asyncio.StreamReader) -> dict[str, Any]:
    while True:
        line = await stdout.readline()
        if not line:
            raise EOFError
        text = line.decode(errors="replace")
        if text.startswith(READY_PREFIX):
            ready: dict[str, Any] = json.loads(text[len(READY_PREFIX) :])
            return ready


async def _drain(stdout: asyncio.StreamReader, log: Any) -> None:
    try:
        while line := await stdout.readline():
            log.write(line)
    finally:
        log.close()


def free_port() -> int:
    """A port that was free a moment ago (for a process that must come back on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scrape(url: str) -> dict[str, float]:
    """``/metrics`` as ``{"name{label=value,...}": value}`` (labels sorted; no labels: just the name)."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url, timeout=10)
    response.raise_for_status()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


@dataclass
class Cluster:
    """Engine + recorder + bridges (see :func:`running_cluster`); ``token_file`` holds the internal token.
    ``processes`` is everything started (restarted bridges too), stopped in reverse order at the end."""

    root: Path
    token_file: Path
    engine: ServiceProcess
    recorder: ServiceProcess
    bridges: list[ServiceProcess] = field(default_factory=list)
    bridge_args: list[str] = field(default_factory=list)
    processes: list[ServiceProcess] = field(default_factory=list)

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def bridge_target(self) -> str:
        """The comma list of every bridge address (the ingress's ``--bridge``)."""
        return ",".join(b.address for b in self.bridges)

    async def start_bridge(self, port: int = 0, *extra: str, name: str = "bridge") -> ServiceProcess:
        """One more bridge process (not added to :attr:`bridges`)."""
        bridge = await start_service(
            "bridge", ["--port", str(port), *self.bridge_args, *extra], self.root, name=name
        )
        self.processes.append(bridge)
        return bridge

    def manifest(self, session_id: str) -> dict[str, Any] | None:
        path = self.archive_dir / session_id / "manifest.json"
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def write_token(path: Path) -> None:
    """A fresh internal token in ``path``, mode 0600 from creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32))


@contextlib.asynccontextmanager
async def running_cluster(
    root: Path, bridges: int = 1, bridge_extra: tuple[str, ...] = (), *, fixed_ports: bool = False
) -> AsyncIterator[Cluster]:
    """The offline engine, a recorder and ``bridges`` bridge processes of the phrases agent on loopback,
    each with ``--metrics-port 0`` and one shared internal token (``fixed_ports``: bridges get ports
    chosen up front, so a restarted one can come back on its address)."""
    token_file = root / "internal-token"
    write_token(token_file)
    internal = ["--internal-token-file", str(token_file)]
    spec = load_agent_file(PHRASES_AGENT).spec
    processes: list[ServiceProcess] = []
    try:
        engine = await start_service(
            "local-realtime", ["--port", "0", "--metrics-port", "0", *spec.local_engine.cli_args()], root
        )
        processes.append(engine)
        recorder = await start_service(
            "recorder",
            ["--port", "0", "--metrics-port", "0", "--archive-dir", str(root / "archive"),
             "--spool-dir", str(root / "spool"), "--resume-grace-s", "5", *internal],
            root,
        )  # fmt: skip
        processes.append(recorder)
        cluster = Cluster(root, token_file, engine, recorder, processes=processes)
        cluster.bridge_args = [
            "--metrics-port", "0", "--agent-file", str(PHRASES_AGENT),
            "--recorder", recorder.address, "--provider-url", str(engine.ready["url"]), *internal,
        ]  # fmt: skip
        ports = [free_port() if fixed_ports else 0 for _ in range(bridges)]
        made = await asyncio.gather(
            *(cluster.start_bridge(p, *bridge_extra, name=f"bridge-{i}") for i, p in enumerate(ports))
        )
        cluster.bridges.extend(made)
        yield cluster
    finally:
        for sp in reversed(processes):
            await sp.stop(timeout_s=30)


@dataclass
class CallOutcome:
    """What one caller saw: the HTTP status of a refused upgrade (and its ``Retry-After``), or the
    ``session.started`` / ``session.ended`` / ``error`` events of the session."""

    http_status: int | None = None
    retry_after: str | None = None
    started: dict[str, Any] | None = None
    ended: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    @property
    def session_id(self) -> str:
        assert self.started is not None
        return str(self.started["session_id"])

    @property
    def refused_full(self) -> bool:
        """Refused for capacity: HTTP 503 with Retry-After, or an ``error`` ``full`` with retry_after_ms."""
        if self.http_status is not None:
            return self.http_status == 503 and bool(self.retry_after)
        return self.started is None and any(
            e["code"] == "full" and e.get("retry_after_ms", 0) > 0 and e["retryable"] for e in self.errors
        )


async def call_once(url: str, token: str, hold_s: float = 0.3, timeout_s: float = 30.0) -> CallOutcome:
    """One caller on ``url``: open, ``session.start``, stay ``hold_s``, hang up, read to ``session.ended``."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    from tests.support.ingress import ProtoCaller

    out = CallOutcome()
    try:
        ws = await connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=timeout_s
        )
    except InvalidStatus as err:
        out.http_status = err.response.status_code
        out.retry_after = err.response.headers.get("Retry-After")
        return out
    c = ProtoCaller(ws)
    try:
        await c.send({"type": "session.start"})
        first = await _first_of(c, ("session.started", "session.ended"), timeout_s)
        if first["type"] == "session.started":
            out.started = first
            await asyncio.sleep(hold_s)
            await c.send({"type": "session.end"})
            out.ended = await c.expect("session.ended", timeout_s)
        else:
            out.ended = first
        await c.closed(timeout_s)
        out.close_code = ws.close_code
    finally:
        out.errors = c.of_type("error")
        await c.aclose()
    return out


async def _first_of(c: Any, types: tuple[str, ...], timeout_s: float) -> dict[str, Any]:
    """The first event of ``c`` (a ``ProtoCaller``) whose type is in ``types``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        for event in c.events:
            if event["type"] in types:
                return dict(event)
        if loop.time() > deadline:
            raise TimeoutError(f"none of {types} within {timeout_s} s; got {[e['type'] for e in c.events]}")
        await asyncio.sleep(0.01)
