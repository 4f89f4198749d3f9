"""Start, watch and stop child service processes.

Each child is ``python -m rtvoice <service> ...``; it announces itself with one ``RTVOICE_READY {json}``
line on stdout (``rtvoice.core.service.announce_ready``). Its stderr is forwarded line by line and the
last lines are kept so a child that dies can be explained in one message.

Each child gets the supervisor's environment without :data:`PRIVATE_ENV` (secrets meant for one child),
plus the variables given for it at :meth:`Supervisor.start`. Children stop in :data:`STOP_ORDER` (callers
first, so every session ends while the services behind it still run), each with its own stop timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from rtvoice.core.service import READY_PREFIX
from rtvoice.core.shutdown import STOP_TIMEOUT_S
from rtvoice.ingress.auth import SECRET_ENV

#: Variables no child inherits from the supervisor's environment; pass them per child at ``start``.
PRIVATE_ENV = frozenset({SECRET_ENV})

#: The order children stop in: the ingress drains its callers, the bridge ends its provider sessions,
#: the recorder finishes archiving, then the engine goes. Services not listed stop last.
STOP_ORDER = ("ingress", "bridge", "recorder", "local-realtime")


class ChildFailed(RuntimeError):
    """A child process exited or never became ready; the message says which and why."""


@dataclass
class Child:
    """One running service process."""

    service: str
    argv: list[str]
    process: asyncio.subprocess.Process
    ready: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = STOP_TIMEOUT_S
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=30))
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def explain(self) -> str:
        lines = [ln for ln in self.tail if ln.strip()]
        last = lines[-1] if lines else "(no output)"
        return f"{self.service} exited with code {self.process.returncode}: {last}"


class Supervisor:
    """Owns the child processes of ``rtvoice up``; stops them in :data:`STOP_ORDER`."""

    def __init__(self, *, echo_logs: bool = True) -> None:
        self.children: list[Child] = []
        self._env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        self._echo = echo_logs

    async def start(
        self,
        service: str,
        args: list[str],
        *,
        ready_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> Child:
        """Start ``rtvoice <service> args`` with ``env`` added to the shared environment and wait for its
        ready line; at :meth:`stop_all` it gets ``stop_timeout_s`` between SIGTERM and SIGKILL.

        Raises :class:`ChildFailed` when it exits first or stays silent past ``ready_timeout_s``.
        """
        argv = [sys.executable, "-m", "rtvoice", service, *args]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self._env, **(env or {})},
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )
        child = Child(service, argv, proc, env=dict(env or {}), stop_timeout_s=stop_timeout_s)
        self.children.append(child)
        ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        child.pumps.append(asyncio.create_task(self._pump_stdout(child, ready)))
        child.pumps.append(asyncio.create_task(self._pump_stderr(child)))
        waiter = asyncio.create_task(proc.wait())
        pending: set[asyncio.Future[Any]] = {ready, waiter}
        done, _ = await asyncio.wait(pending, timeout=ready_timeout_s, return_when="FIRST_COMPLETED")
        if ready in done:
            waiter.cancel()
            child.ready = ready.result()
            return child
        if waiter in done:
            await asyncio.sleep(0.05)  # let the stderr pump catch the last lines
            raise ChildFailed(child.explain())
        waiter.cancel()
        raise ChildFailed(f"{service} did not become ready within {ready_timeout_s:.0f} s")

    async def _pump_stdout(self, child: Child, ready: asyncio.Future[dict[str, Any]]) -> None:
        assert child.process.stdout is not None
        async for raw in child.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(READY_PREFIX) and not ready.done():
                with contextlib.suppress(ValueError):
                    ready.set_result(json.loads(line[len(READY_PREFIX) :]))
                continue
            child.tail.append(line)
            if self._echo:
                print(f"[{child.service}] {line}", flush=True)

    async def _pump_stderr(self, child: Child) -> None:
        assert child.process.stderr is not None
        async for raw in child.process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            child.tail.append(line)
            if self._echo:
                print(line, file=sys.stderr, flush=True)

    async def restart(self, child: Child, *, ready_timeout_s: float = 60.0) -> Child:
        """Start a dead child again with the same arguments on the same port (peers keep their address).

        Raises :class:`ChildFailed` like :meth:`start`.
        """
        args = list(child.argv[4:])
        port = child.ready.get("port")
        if port is not None and "--port" in args:
            args[args.index("--port") + 1] = str(port)
        self.children.remove(child)
        return await self.start(
            child.service,
            args,
            ready_timeout_s=ready_timeout_s,
            env=child.env,
            stop_timeout_s=child.stop_timeout_s,
        )

    async def wait_any_exit(self) -> Child:
        """Return the first child that exits."""
        waits = {asyncio.create_task(c.process.wait()): c for c in self.children}
        try:
            done, _ = await asyncio.wait(waits, return_when="FIRST_COMPLETED")
            return waits[next(iter(done))]
        finally:
            for t in waits:
                t.cancel()

    def stop_order(self) -> list[Child]:
        """The children in the order :meth:`stop_all` stops them (:data:`STOP_ORDER`, then the rest in
        reverse start order)."""
        rank = {service: i for i, service in enumerate(STOP_ORDER)}
        newest_first = list(reversed(self.children))
        return sorted(newest_first, key=lambda c: rank.get(c.service, len(STOP_ORDER)))

    async def stop_all(self) -> None:
        """SIGTERM each child in :meth:`stop_order`, wait up to its ``stop_timeout_s``, then SIGKILL it
        (with a warning on stderr: its sessions did not end cleanly)."""
        for child in self.stop_order():
            proc = child.process
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), child.stop_timeout_s)
                except TimeoutError:
                    late = f"{child.service} did not stop within {child.stop_timeout_s:g} s"
                    print(f"rtvoice up: {late}; killing it", file=sys.stderr, flush=True)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            for pump in child.pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(pump, 1.0)
