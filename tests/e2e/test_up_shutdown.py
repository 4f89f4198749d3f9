"""SIGTERM to a real `rtvoice up` while a call is live: the call ends honestly and is archived.

Everything is real: `rtvoice up` (offline engine, recorder, bridge, ingress as processes), `rtvoice call`
as a process streaming synthesized speech, and a protocol-level caller that keeps streaming silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.calls import run_call, summary_of, wait_archive, wait_for_log
from tests.support.ingress import ProtoCaller, caller, upgrade_status
from tests.support.speech import silence_pcm16, write_wav
from tests.support.stack import running_up

pytestmark = pytest.mark.slow

CLOSE_SERVICE_RESTART = 1012  # RFC 6455 registry: "Service Restart"


def _environ(pid: int) -> bytes:
    """The environment a running process was started with (Linux /proc), NUL-separated."""
    return Path(f"/proc/{pid}/environ").read_bytes()


async def test_sigterm_mid_call_ends_it_with_server_shutdown_and_a_complete_archive(tmp_path: Path) -> None:
    # A 1 s drain: the call (question + 6 s of silence) is still live when the ingress ends it.
    wav = write_wav(tmp_path / "long.wav", "what is the weather today", tail_silence_ms=6000)
    async with running_up(tmp_path, extra_args=("--drain-timeout-s", "1")) as up:
        call = asyncio.create_task(run_call(up, wav))
        await wait_for_log(up, "(provider=", unless=call)  # the ingress logs the started session
        # Only the ingress, which checks caller tokens, was given the auth secret.
        holders = {svc for svc, pid in up.info["pids"].items() if b"RTVOICE_AUTH_SECRET=" in _environ(pid)}
        assert holders == {"ingress"}, up.info["pids"]
        up.process.send_signal(signal.SIGTERM)
        rc, out, err = await call
        await asyncio.wait_for(up.process.wait(), 60)
        log = up.log_text()

        # The caller heard why: session.ended server_shutdown, then a clean close (not 1006).
        assert rc == 5, f"rtvoice call: {rc}\n{out}\n{err}"
        summary = summary_of(out)
        assert summary["ended_reason"] == "server_shutdown", out
        assert summary["close_code"] == CLOSE_SERVICE_RESTART
        assert "session ended: server_shutdown" in out
        assert [e["code"] for e in summary["errors"]] == ["reconnect"]
        assert summary["errors"][0]["retryable"] is True

        # `rtvoice up` stopped every service within its timeout (none had to be killed) and exited 0.
        assert up.process.returncode == 0, log[-3000:]
        assert "killing it" not in log
        assert not up.up_file.exists()

        # The archive is complete and says what really happened.
        folder = await wait_archive(up, summary["session_id"], timeout_s=5)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["complete"] is True
        assert manifest["end_reason"] == "server_shutdown"
        assert {"audio.wav", "transcript.json", "spans.json"} <= {p.name for p in folder.iterdir()}


async def _stream_silence(c: ProtoCaller) -> None:
    """A caller who keeps listening: 20 ms frames of silence at real-time pace until the close."""
    frame = silence_pcm16(20)
    loop = asyncio.get_running_loop()
    t0, k = loop.time(), 0
    with contextlib.suppress(ConnectionClosed):
        while True:
            await c.send(frame)
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * 0.02 - loop.time()))


async def test_a_call_outlasting_the_drain_is_ended_not_dropped(tmp_path: Path) -> None:
    # Longer than the 15 s `rtvoice up` used to allow a service before SIGKILL (the caller then got 1006).
    drain_s = 20.0
    async with running_up(tmp_path, extra_args=("--drain-timeout-s", f"{drain_s:g}")) as up:
        async with caller(up.caller_url, up.token) as c:
            started = await c.start(input_format="pcm16_16k", output_format="pcm16_16k")
            streaming = asyncio.create_task(_stream_silence(c))
            loop = asyncio.get_running_loop()
            up.process.send_signal(signal.SIGTERM)
            t0 = loop.time()
            # While draining, new calls are refused with 503; the live one goes on.
            await wait_for_log(up, "draining: 1 live session")
            assert await upgrade_status(up.caller_url, {"Authorization": f"Bearer {up.token}"}) == 503
            ended = await c.expect("session.ended", timeout_s=drain_s + 15)
            lived_s = loop.time() - t0
            await c.closed(timeout_s=5)
            streaming.cancel()
            await asyncio.gather(streaming, return_exceptions=True)
        await asyncio.wait_for(up.process.wait(), 60)
        log = up.log_text()

        assert ended["reason"] == "server_shutdown"
        assert c.ws.close_code == CLOSE_SERVICE_RESTART
        reconnect = c.of_type("error")[-1]
        assert reconnect["code"] == "reconnect" and reconnect["retryable"] is True
        assert lived_s >= drain_s * 0.9, f"the call was cut after {lived_s:.1f} s, before the drain ended"
        assert up.process.returncode == 0 and "killing it" not in log, log[-3000:]

        folder = await wait_archive(up, started["session_id"], timeout_s=5)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["complete"] is True and manifest["end_reason"] == "server_shutdown"
