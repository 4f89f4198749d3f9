"""The whole platform for tests: ``rtvoice up`` as a real subprocess on ephemeral ports.

``async with running_up(tmp_path, agent_file) as up:`` yields an :class:`UpInstance` once ``up.json``
is written (all four services ready): ``up.caller_url`` (ws://.../v1/agents/ns/name), ``up.token``,
``up.page_url``, ``up.archive_dir``. On exit it sends SIGTERM (the clean Ctrl-C path) and waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PHRASES_AGENT = ROOT / "examples" / "agent-phrases.yaml"


@dataclass
class UpInstance:
    process: asyncio.subprocess.Process
    state_dir: Path
    info: dict[str, Any]
    log_path: Path

    @property
    def caller_url(self) -> str:
        return str(self.info["caller_url"])

    @property
    def token(self) -> str:
        return str(self.info["token"])

    @property
    def page_url(self) -> str:
        return str(self.info["page_url"])

    @property
    def archive_dir(self) -> Path:
        return Path(self.info["archive_dir"])

    @property
    def up_file(self) -> Path:
        return self.state_dir / "up.json"

    def pid_of(self, service: str) -> int:
        return int(self.info["pids"][service])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.asynccontextmanager
async def running_up(
    tmp_path: Path,
    agent_file: Path | None = PHRASES_AGENT,
    *,
    ready_timeout_s: float = 90.0,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> AsyncIterator[UpInstance]:
    state = tmp_path / "state"
    log_path = tmp_path / "up.log"
    args = [sys.executable, "-m", "rtvoice", "up", "--port", "0", "--state-dir", str(state), *extra_args]
    if agent_file is not None:
        args += ["-f", str(agent_file)]
    log = log_path.open("wb")
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **(env or {})}
    )
    up_file = state / "up.json"
    try:
        deadline = asyncio.get_running_loop().time() + ready_timeout_s
        while not up_file.exists():
            if proc.returncode is not None:
                raise RuntimeError(f"rtvoice up exited with {proc.returncode}:\n{log_path.read_text()}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"rtvoice up not ready in {ready_timeout_s} s:\n{log_path.read_text()}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.05)
        info = json.loads(up_file.read_text())
        yield UpInstance(proc, state, info, log_path)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
