"""Several worker processes of one service on one port (``--workers N``), so a service uses every core.

The parent process claims the port (a port of 0 becomes a free one), starts N copies of the same
command with ``--workers 1 --reuse-port --port P``, and each worker binds ``P`` with ``SO_REUSEPORT``:
the kernel spreads new connections over the workers. The parent only supervises: it announces itself
ready (``RTVOICE_READY`` with the port, the workers' pids and metrics ports) once every worker is, passes
SIGTERM/SIGINT on to all of them (each drains its own sessions), and when a worker dies it stops the rest
and exits 1, so whatever runs the service (``rtvoice up``, Kubernetes) sees the failure and restarts it.

Each worker keeps its own limits (``--max-sessions`` is per worker) and, with ``--metrics-port M``,
serves ``/metrics`` on ``M + k`` (``k`` = 0..N-1; ``M`` = 0 gives each a free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from rtvoice.core.service import announce_ready, install_stop_signals
from rtvoice.up.supervisor import ChildFailed, Supervisor

log = logging.getLogger(__name__)

#: Flags the parent sets for each worker (removed from the parent's own arguments, with their values).
_OWN_FLAGS = ("--workers", "--port", "--metrics-port", "--reuse-port")
_SWITCHES = ("--reuse-port",)


def worker_args(argv: Sequence[str], port: int, metrics_port: int | None) -> list[str]:
    """``argv`` (the service's own arguments) with the worker flags replaced: ``--workers 1
    --reuse-port --port PORT`` and ``--metrics-port`` when given."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _OWN_FLAGS:
            skip = "=" not in arg and name not in _SWITCHES
            continue
        out.append(arg)
    out += ["--workers", "1", "--reuse-port", "--port", str(port)]
    if metrics_port is not None:
        out += ["--metrics-port", str(metrics_port)]
    return out


def claim_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening: it takes no connections),
    holding the port while the workers bind it; raises ``OSError`` when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class WorkerGroup:
    """Runs ``rtvoice <service> <argv>`` as several workers on ``host:port`` (see the module docstring)."""

    def __init__(self, service: str, argv: Sequence[str], host: str, port: int) -> None:
        self.service = service
        self.argv = list(argv)
        self.host = host
        self.port = port

    async def serve(
        self,
        workers: int,
        metrics_port: int | None,
        *,
        stop_timeout_s: float,
        private_env: Sequence[str] = (),
    ) -> int:
        """Start ``workers`` processes, announce ready, and supervise them until a stop signal (0) or a
        worker's death (1); on stop each worker gets ``stop_timeout_s`` to drain. ``private_env`` names
        variables the workers need although the supervisor keeps them from children by default (e.g. the
        caller-token secret)."""

        try:
            holder = claim_port(self.host, self.port)
        except OSError as err:
            sys.stderr.write(f"rtvoice: {self.service}: cannot listen on {self.host}:{self.port}: {err}\n")
            return 1
        port = int(holder.getsockname()[1])
        env = {name: os.environ[name] for name in private_env if name in os.environ}
        sup = Supervisor(echo_logs=True)
        stop = asyncio.Event()
        install_stop_signals(stop)
        try:
            children = []
            for k in range(workers):
                mport = None if metrics_port is None else (metrics_port + k if metrics_port else 0)
                args = worker_args(self.argv, port, mport)
                children.append(await sup.start(self.service, args, env=env))
        except ChildFailed as err:
            sys.stderr.write(f"rtvoice: {self.service}: a worker did not start: {err}\n")
            await _stop(sup, stop_timeout_s)
            return 1
        finally:
            holder.close()
        first = children[0].ready
        announce_ready(
            self.service,
            port=port,
            url=first.get("url"),
            workers=[c.process.pid for c in children],
            metrics_ports=[c.ready.get("metrics_port") for c in children],
        )
        stopped = asyncio.ensure_future(stop.wait())
        died = asyncio.ensure_future(sup.wait_any_exit())
        await asyncio.wait({stopped, died}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if died.done():
            log.error("%s: %s; stopping the other workers", self.service, died.result().explain())
            code = 1
        stopped.cancel()
        died.cancel()
        await _stop(sup, stop_timeout_s)
        return code


async def _stop(sup: Supervisor, timeout_s: float) -> None:
    """SIGTERM every worker at once (each drains its own sessions meanwhile), SIGKILL any still running
    after ``timeout_s``."""
    procs = [c.process for c in sup.children if c.process.returncode is None]
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    if not procs:
        return
    await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=timeout_s)
    for proc in procs:
        if proc.returncode is None:
            log.warning("a worker (pid %d) did not stop within %.0f s; killing it", proc.pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await asyncio.gather(*(p.wait() for p in procs))
