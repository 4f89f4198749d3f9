"""Caller auth at the WebSocket upgrade, Origin checks, and tokens kept out of logs."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from rtvoice.ingress.auth import mint_token
from tests.support.fake_bridge import FakeBridge
from tests.support.ingress import SECRET, caller, running_ingress, token, upgrade_status

AGENT = "default/assistant"


@pytest.fixture
async def bridge() -> AsyncIterator[FakeBridge]:
    fb = await FakeBridge().start()
    yield fb
    await fb.stop(0)


async def test_upgrade_refusals(bridge: FakeBridge) -> None:
    async with running_ingress(bridge.address) as srv:
        url = srv.ws_url(AGENT)
        bearer = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
        assert await upgrade_status(url) == 401
        assert await upgrade_status(url, bearer("rtv1.garbage")) == 401
        assert (
            await upgrade_status(
                url, bearer(mint_token(b"another-secret-0123456789", "default", "assistant", 60))
            )
            == 401
        )
        assert await upgrade_status(url, {"Authorization": "Basic dXNlcjpwYXNz"}) == 401
        assert await upgrade_status(url, bearer(token("default", "other-agent"))) == 403
        assert await upgrade_status(url, bearer(token("other-ns", "assistant"))) == 403
        expired = mint_token(SECRET, "default", "assistant", 60, now_unix_s=1_000_000)
        assert await upgrade_status(url, bearer(expired)) == 403
        assert await upgrade_status(url, bearer(token())) == 101
        assert await upgrade_status(f"{url}?token={token()}") == 101
        assert await upgrade_status(url, bearer(token("default", "*"))) == 101
        assert await upgrade_status(url, bearer(token("*", "*"))) == 101
        # Origin: same-origin by default.
        same = srv.url.rstrip("/")
        assert await upgrade_status(url, bearer(token()), origin=same) == 101
        assert await upgrade_status(url, bearer(token()), origin="https://evil.example") == 403
        assert await upgrade_status(url, bearer(token()), origin="null") == 403
        # The 401 says how to authenticate.
        async with httpx.AsyncClient() as http:
            r = await http.get(
                srv.url + "v1/agents/default/assistant",
                headers={
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            )
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            assert "missing_token" in r.text


async def test_allowed_origins_list(bridge: FakeBridge) -> None:
    async with running_ingress(bridge.address, allowed_origins=("https://app.example.com",)) as srv:
        url = srv.ws_url(AGENT)
        h = {"Authorization": f"Bearer {token()}"}
        assert await upgrade_status(url, h, origin="https://app.example.com") == 101
        assert await upgrade_status(url, h, origin=srv.url.rstrip("/")) == 403
        assert await upgrade_status(url, h) == 101  # non-browser clients send no Origin


async def test_no_auth_mode_warns_and_accepts(bridge: FakeBridge, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rtvoice.ingress")
    async with running_ingress(bridge.address, no_auth=True, auth_secret=None) as srv:
        assert "DISABLED" in caplog.text
        async with caller(srv.ws_url(AGENT)) as c:
            await c.start()


async def test_tokens_never_reach_logs_bridge_or_caller(
    bridge: FakeBridge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("websockets", "rtvoice", "rtvoice.ingress.websockets"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    good = token(subject="alice")
    wrong = token("default", "someone-else")
    try:
        async with running_ingress(bridge.address) as srv:
            url = srv.ws_url(AGENT)
            assert await upgrade_status(f"{url}?token={wrong}") == 403
            assert await upgrade_status(url, {"Authorization": f"Bearer {wrong}"}) == 403
            async with caller(f"{url}?token={good}") as c:
                await c.start()
                await c.send({"type": "text", "text": "hi"})
                await c.expect("response.done")
                await c.send({"type": "session.end"})
                await c.expect("session.ended")
            async with caller(url, good) as c:
                await c.start()
                await c.send(b"\x01")
                await c.expect("error")
    finally:
        for name in ("websockets", "rtvoice", "rtvoice.ingress.websockets"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    # Everything the server side logged (the test's own websockets client logs its requests: not ours).
    server_records = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in server_records)
    assert "< GET /v1/agents" in logged  # the server's websockets debug log really was captured
    for tok in (good, wrong):
        signature = tok.rsplit(".", 1)[1]
        assert signature not in logged and tok not in logged
    for fake in bridge.sessions:
        assert good.rsplit(".", 1)[1] not in fake.start.SerializeToString().decode("latin-1")
    assert good not in json.dumps(c.events)


async def test_static_page_and_health(bridge: FakeBridge) -> None:
    async with running_ingress(bridge.address, default_agent="demo/helper") as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            page = await http.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert page.headers["referrer-policy"] == "no-referrer"
            assert "<script" in page.text
            for name in ("app.js", "capture-worklet.js", "playback-worklet.js"):
                r = await http.get(f"/static/{name}")
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
            assert (await http.get("/static/style.css")).headers["content-type"].startswith("text/css")
            assert (await http.get("/static/nope.js")).status_code == 404
            assert (await http.get("/static/../cli.py")).status_code == 404
            assert (await http.get("/healthz")).text == "ok\n"
            cfg = (await http.get("/v1/config")).json()
            assert cfg == {
                "protocol": "v1",
                "default_agent": "demo/helper",
                "auth": True,
                "formats": ["pcm16_16k", "pcm16_24k", "g711_mulaw"],
            }
            srv.draining = True
            assert (await http.get("/healthz")).status_code == 503
