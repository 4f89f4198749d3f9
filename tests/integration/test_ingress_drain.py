"""Draining on SIGTERM: the real ``rtvoice ingress`` process, the fake bridge in-process."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.support.fake_bridge import FakeBridge
from tests.support.ingress import caller, start_ingress_process, token, upgrade_status


async def test_sigterm_refuses_new_sessions_lets_live_ones_finish_then_cuts_the_rest(tmp_path: Path) -> None:
    fb = await FakeBridge().start()
    ingress = await asyncio.to_thread(
        start_ingress_process,
        tmp_path,
        "--bridge",
        fb.address,
        "--drain-timeout-s",
        "1.5",
        "--log-level",
        "DEBUG",
    )
    tok = token()
    try:
        assert ingress.ready["service"] == "ingress"
        assert ingress.ready["url"] == f"http://127.0.0.1:{ingress.port}/"
        url = f"ws://127.0.0.1:{ingress.port}/v1/agents/default/assistant?token={tok}"
        async with caller(url) as a, caller(url) as b:
            await a.start()
            await b.start()
            ingress.proc.send_signal(signal.SIGTERM)
            for _ in range(100):
                if await upgrade_status(url) == 503:
                    break
                await asyncio.sleep(0.05)
            assert await upgrade_status(url) == 503
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"http://127.0.0.1:{ingress.port}/healthz")).status_code == 503
            # b finishes on its own during the drain window; a keeps talking and is cut at the deadline.
            await b.send({"type": "text", "text": "quick question"})
            await b.expect("response.done")
            await b.send({"type": "session.end"})
            assert (await b.expect("session.ended"))["reason"] == "caller_hangup"
            err = await a.expect("error", timeout_s=10)
            assert (err["kind"], err["code"], err["retryable"], err["fatal"]) == (
                "unavailable",
                "reconnect",
                True,
                True,
            )
            assert (await a.expect("session.ended"))["reason"] == "server_shutdown"
            await a.closed()
            assert a.ws.close_code == 1012
        assert await asyncio.to_thread(ingress.proc.wait, 10) == 0
        assert sorted(s.end_reason or "" for s in fb.sessions) == ["caller_hangup", "server_shutdown"]
        stderr = ingress.stderr()
        assert "draining" in stderr and "GET /v1/agents" in stderr
        assert tok not in stderr and tok.rsplit(".", 1)[1] not in stderr
    finally:
        if ingress.proc.poll() is None:
            ingress.proc.kill()
            ingress.proc.wait()
        await fb.stop(0)


async def test_start_up_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.ingress import REPO

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin"}
        return subprocess.run(
            [sys.executable, "-m", "rtvoice", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=30,
        )

    no_bridge = run("ingress", "--no-auth")
    assert no_bridge.returncode != 0 and no_bridge.stderr.strip().count("\n") == 0
    assert "--bridge" in no_bridge.stderr
    no_secret = run("ingress", "--bridge", "127.0.0.1:1")
    assert no_secret.returncode != 0 and "auth secret" in no_secret.stderr
    assert no_secret.stderr.strip().count("\n") == 0
    secret_file = tmp_path / "secret"
    secret_file.write_text("0123456789abcdef0123\n")
    tok = run("token", "--name", "assistant", "--ttl", "60", "--auth-secret-file", str(secret_file))
    assert tok.returncode == 0 and tok.stdout.startswith("rtv1.")
    from rtvoice.ingress.auth import check_token

    claims = check_token(b"0123456789abcdef0123", tok.stdout.strip(), "default", "assistant")
    assert claims.expires_unix_s - claims.issued_unix_s == 60
    assert run("token", "--name", "x").returncode == 1
