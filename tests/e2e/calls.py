"""Helpers of the `rtvoice up` end-to-end tests: run `rtvoice call` as a process, wait for an archive."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.support.stack import UpInstance


async def run_call(up: UpInstance, wav: Path, *extra: str) -> tuple[int, str, str]:
    """`rtvoice call WAV --json` against ``up`` (state file from ``up``); (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtvoice",
        "call",
        str(wav),
        "--state-file",
        str(up.up_file),
        "--json",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def summary_of(out: str) -> dict[str, Any]:
    """The JSON summary line `rtvoice call --json` prints last."""
    return dict(json.loads(out.strip().splitlines()[-1]))


async def wait_archive(up: UpInstance, session_id: str, timeout_s: float = 20.0) -> Path:
    """The archive folder of ``session_id`` once its manifest exists; AssertionError (with the log tail)
    after ``timeout_s``."""
    folder = up.archive_dir / session_id
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (folder / "manifest.json").exists():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no archive for {session_id} in {up.archive_dir}:\n{up.log_text()[-3000:]}")
        await asyncio.sleep(0.1)
    return folder


async def wait_for_log(
    up: UpInstance, text: str, timeout_s: float = 30.0, *, unless: asyncio.Future[Any] | None = None
) -> None:
    """Wait until ``text`` appears in the `rtvoice up` log; AssertionError after ``timeout_s`` or as soon
    as ``unless`` (e.g. the call's task) is done first."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while text not in up.log_text():
        if unless is not None and unless.done():
            raise AssertionError(
                f"ended before {text!r} was logged: {unless.result()!r}\n{up.log_text()[-3000:]}"
            )
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{text!r} not in the log within {timeout_s:g} s:\n{up.log_text()[-3000:]}")
        await asyncio.sleep(0.05)
