"""``rtvoice bridge --api-key-file``: the provider key is read from a (Secret-mounted) file, and a
rotated key reaches new sessions without restarting the bridge. The real bridge process against the fake
OpenAI Realtime server (a paid remote API cannot run here), which accepts only its one valid key."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import yaml

from tests.support.bridge import ConverseClient
from tests.support.cluster import start_service
from tests.support.fake_openai import VALID_KEY, FakeOpenAI


def _write_key(path: Path, key: str) -> None:
    """Replace the key file atomically, as the kubelet updates a mounted Secret (new file, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.replace(tmp, path)


async def _first_answer(target: str) -> tuple[str, str]:
    """Start one session: ``("ready", "")`` or ``("end", <error code>)``."""
    async with ConverseClient(target) as call:
        frame = await call.start(timeout_s=15)
        codes = [e.code for e in call.of_kind("error")]
        return str(frame.WhichOneof("frame")), (codes[0] if codes else "")


async def test_a_rotated_key_file_reaches_new_sessions_without_a_restart(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "rtvoice.io/v1alpha1",
                "kind": "VoiceAgent",
                "metadata": {"name": "concierge", "namespace": "default"},
                "spec": {"provider": "openai", "turnDetection": {"type": "server_vad"}},
            }
        )
    )
    key_file = tmp_path / "api-key"
    _write_key(key_file, "sk-revoked-key-1111")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "RTVOICE_PROVIDER_API_KEY")}
    async with FakeOpenAI() as fake:
        bridge = await start_service(
            "bridge",
            ["--port", "0", "--agent-file", str(agent), "--provider-url", fake.url, "--drain-timeout-s", "5"],
            tmp_path,
            env={**env, "RTVOICE_API_KEY_FILE": str(key_file)},
        )
        try:
            assert await _first_answer(bridge.address) == ("end", "invalid_api_key")
            _write_key(key_file, VALID_KEY)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while (answer := await _first_answer(bridge.address)) != ("ready", ""):
                assert answer == ("end", "invalid_api_key"), answer
                assert loop.time() < deadline, "the rotated key was not picked up"
                await asyncio.sleep(0.2)  # poll interval (the bridge checks the file at most once a second)
            assert bridge.proc.returncode is None  # same process, no restart
            presented = [c.headers.get("authorization") for c in fake.connections]
            assert presented[0] == "Bearer sk-revoked-key-1111"
            assert presented[-1] == f"Bearer {VALID_KEY}"
        finally:
            assert await bridge.stop() == 0
