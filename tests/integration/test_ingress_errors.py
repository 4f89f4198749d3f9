"""Every bad input gets a typed ``error`` event and the session goes on; limits end sessions cleanly."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support.fake_bridge import FakeBridge
from tests.support.ingress import caller, running_ingress, token

AGENT = "default/assistant"


@pytest.fixture
async def bridge() -> AsyncIterator[FakeBridge]:
    fb = await FakeBridge().start()
    yield fb
    await fb.stop(0)


BEFORE_START: list[tuple[Any, str, str]] = [
    (b"\x00\x00" * 160, "protocol", "audio_before_start"),
    ({"type": "text", "text": "hi"}, "protocol", "not_started"),
    ({"type": "session.start", "input_format": "pcm16_44k"}, "audio_format", "unknown_format"),
    ({"type": "session.start", "output_format": "opus"}, "audio_format", "unknown_format"),
    ({"type": "session.start", "input_format": 16000}, "protocol", "bad_field"),
]

AFTER_START: list[tuple[Any, str, str]] = [
    ("{not json", "protocol", "bad_json"),
    ("[1, 2, 3]", "protocol", "not_an_object"),
    ({"text": "no type"}, "protocol", "missing_type"),
    ({"type": "dance"}, "protocol", "unknown_type"),
    ({"type": "playback.mark", "item_id": "x"}, "protocol", "bad_field"),
    ({"type": "playback.mark", "item_id": "x", "played_ms": -5}, "protocol", "bad_field"),
    ({"type": "playback.mark", "item_id": "x", "played_ms": "10"}, "protocol", "bad_field"),
    ({"type": "steer"}, "protocol", "bad_field"),
    ({"type": "steer", "temperature": 9}, "protocol", "bad_field"),
    ({"type": "steer", "turn_detection": {"type": "magic"}}, "protocol", "bad_field"),
    ({"type": "text", "text": ""}, "protocol", "bad_field"),
    ({"type": "interrupt", "extra": 1}, "protocol", "bad_field"),
    ({"type": "session.start"}, "protocol", "already_started"),
    (b"\x01\x02\x03", "audio_format", "odd_pcm_length"),
    (b"", "audio_format", "empty_frame"),
    (b"\x00" * 32002, "audio_format", "frame_too_large"),
    ("x" * 70000, "limit", "message_too_large"),
]


async def test_typed_errors_and_the_session_goes_on(bridge: FakeBridge) -> None:
    async with running_ingress(bridge.address) as srv, caller(srv.ws_url(AGENT), token()) as c:
        for message, kind, code in BEFORE_START:
            await c.send(message)
            err = await c.expect("error")
            assert (err["kind"], err["code"], err["fatal"]) == (kind, code, False), (message, err)
            assert err["message"]
        await c.start()
        for message, kind, code in AFTER_START:
            await c.send(message)
            err = await c.expect("error")
            assert (err["kind"], err["code"], err["fatal"]) == (kind, code, False), (str(message)[:80], err)
        # Still alive: a typed turn is answered.
        await c.send({"type": "text", "text": "still there?"})
        await c.expect("response.done")
        assert not c.of_type("session.ended")


async def test_unknown_agent_path_is_404_and_plain_get_is_426(bridge: FakeBridge) -> None:
    import httpx

    async with running_ingress(bridge.address) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/v1/agents/Bad_NS/x")).status_code == 404
            assert (await http.get("/v1/agents/default")).status_code == 404
            r = await http.get("/v1/agents/default/assistant")
            assert r.status_code == 426


async def test_idle_timeout_ends_the_session(bridge: FakeBridge) -> None:
    async with (
        running_ingress(bridge.address, limits={"idle_timeout_s": 0.6}) as srv,
        caller(srv.ws_url(AGENT), token()) as c,
    ):
        await c.start()
        err = await c.expect("error")
        assert (err["kind"], err["code"], err["fatal"], err["retryable"]) == (
            "read_timeout",
            "idle_timeout",
            True,
            True,
        )
        assert (await c.expect("session.ended"))["reason"] == "idle_timeout"
        await c.closed()
    assert bridge.sessions[0].end_reason == "idle_timeout"


async def test_max_session_length(bridge: FakeBridge) -> None:
    async with (
        running_ingress(bridge.address, limits={"max_session_s": 1.0}) as srv,
        caller(srv.ws_url(AGENT), token()) as c,
    ):
        await c.start()
        for _ in range(100):  # keep talking: only the duration limit can end it
            await c.send(b"\x00\x00" * 320)
            await asyncio.sleep(0.02)
            if c.of_type("error"):
                break
        err = await c.expect("error")
        assert (err["kind"], err["code"], err["fatal"]) == ("limit", "max_session_duration", True)
        assert (await c.expect("session.ended"))["reason"] == "max_duration"


async def test_inbound_rate_limit_drops_with_one_error_per_second(bridge: FakeBridge) -> None:
    async with (
        running_ingress(bridge.address, limits={"max_frames_per_s": 20}) as srv,
        caller(srv.ws_url(AGENT), token()) as c,
    ):
        await c.start()
        for _ in range(60):
            await c.send(b"\x00\x00" * 160)
        err = await c.expect("error")
        assert (err["kind"], err["code"], err["retryable"], err["fatal"]) == (
            "limit",
            "rate_limited",
            True,
            False,
        )
        await asyncio.sleep(1.2)
        await c.send({"type": "text", "text": "after the burst"})
        await c.expect("response.done")
        assert len(c.of_type("error")) == 1
    fake = bridge.sessions[0]
    assert len(fake.frames("audio")) < 60


async def test_message_over_the_hard_cap_closes_with_1009(bridge: FakeBridge) -> None:
    async with running_ingress(
        bridge.address, limits={"max_frame_bytes": 1000, "max_text_bytes": 1000}
    ) as srv:
        async with caller(srv.ws_url(AGENT), token()) as c:
            await c.start()
            await c.send(b"\x00" * 1200)  # over the soft limit: typed error
            assert (await c.expect("error"))["code"] == "frame_too_large"
            await c.send(b"\x00" * 10000)  # over 4x: websockets closes the connection
            await c.closed()
            assert c.ws.close_code == 1009


async def test_slow_caller_cannot_grow_server_memory(bridge: FakeBridge) -> None:
    bridge.auto_reply = True
    bridge.reply_ms = 30_000  # 30 s of 24 kHz audio (1.44 MB), sent as fast as gRPC takes it
    async with running_ingress(bridge.address, limits={"max_outbound_audio_ms": 400}) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", srv.port))
        ws = await connect(
            srv.ws_url(AGENT),
            sock=sock,
            additional_headers={"Authorization": f"Bearer {token()}"},
            compression=None,
            max_queue=1,
        )
        await ws.send(json.dumps({"type": "session.start", "output_format": "pcm16_24k"}))
        await ws.send(json.dumps({"type": "text", "text": "talk for a long time"}))
        fake = await bridge.next_session()
        (session,) = srv.sessions
        # The fake sends 30 s of audio in a burst; the caller reads nothing: the queue stays bounded and
        # the oldest audio is dropped once the socket buffers are full.
        for _ in range(400):
            assert session.out.queued_audio_ms <= 400
            if session.out.dropped_audio_frames > 0 and fake.outbox.empty() and fake.reply_task is not None:
                break
            await asyncio.sleep(0.05)
        assert session.out.queued_audio_ms <= 400
        assert session.out.dropped_audio_frames > 0
        # Now read everything: the caller got less than was sent, and the count is reported.
        await ws.send(json.dumps({"type": "session.end"}))
        received = 0
        ended: dict[str, Any] = {}
        async for msg in ws:
            if isinstance(msg, bytes):
                received += len(msg)
            else:
                event = json.loads(msg)
                if event["type"] == "session.ended":
                    ended = event
        assert received < 24000 * 2 * 30
        assert ended["dropped_audio_frames"] == session.out.dropped_audio_frames
        await asyncio.wait_for(fake.closed.wait(), 5)
    assert fake.end_reason == "caller_hangup"
    assert fake.end_frame is not None
    assert fake.end_frame.agent_audio_frames_dropped == ended["dropped_audio_frames"] > 0
