"""Helpers of the `rtvoice up` end-to-end tests: run `rtvoice call` as a process, wait for an archive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rtvoice.caller.client import CallOptions
from rtvoice.caller.wavfile import read_wav, speech_end_sample
from rtvoice.core.audio import PCM16_16K, encode
from tests.support.fake_openai import VALID_KEY, FakeOpenAI
from tests.support.speech import write_wav
from tests.support.stack import UpInstance, running_up

#: An OpenAI agent for `rtvoice up` against the Realtime fake: audio only, 200 ms of silence ends a turn.
OPENAI_AGENT = """apiVersion: rtvoice.io/v1alpha1
kind: VoiceAgent
metadata: {name: fake, namespace: default}
spec:
  provider: openai
  modalities: audio
  turnDetection: {type: server_vad, silenceDurationMs: 200}
  audio: {input: pcm16_16k, output: pcm16_16k}
"""


def speech_call(up: UpInstance, tmp_path: Path, text: str, *, hold_s: float = 0.0) -> CallOptions:
    """Options of one `rtvoice call` to ``up`` saying ``text`` (synthesized now, PCM16 16 kHz both ways),
    staying ``hold_s`` on the line after the answer."""
    samples = read_wav(str(write_wav(tmp_path / f"{abs(hash(text))}.wav", text)), 16000)
    end = speech_end_sample(samples, 16000)
    assert end is not None, f"no speech found in the synthesized {text!r}"
    return CallOptions(
        url=up.caller_url,
        token=up.token,
        input_format=PCM16_16K,
        output_format=PCM16_16K,
        audio=encode(samples, PCM16_16K),
        speech_end_ms=end / 16,
        timeout_s=20,
        hold_s=hold_s,
    )


@contextlib.asynccontextmanager
async def up_on_fake(
    tmp_path: Path, fake: FakeOpenAI, *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[UpInstance]:
    """`rtvoice up` of :data:`OPENAI_AGENT` on the OpenAI Realtime fake ``fake``."""
    agent = tmp_path / "agent.yaml"
    agent.write_text(OPENAI_AGENT)
    async with running_up(
        tmp_path,
        agent,
        extra_args=("--provider-url", fake.url, *extra),
        env={"OPENAI_API_KEY": VALID_KEY, **(env or {})},
    ) as up:
        yield up


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
