"""Routing callers to agent bridges, unreachable agents, and a bridge dying mid-session."""

from __future__ import annotations

import asyncio

from tests.support.fake_bridge import FakeBridge
from tests.support.ingress import caller, running_ingress, token


async def test_address_pattern_routes_each_agent_to_its_bridge() -> None:
    a, b = await FakeBridge().start(), await FakeBridge().start()
    try:
        # Agent names made of the fake bridges' port digits are valid DNS labels: "127.0.0.1:{name}".
        async with running_ingress(bridge_address_pattern="127.0.0.1:{name}") as srv:
            for fb in (a, b):
                name = str(fb.port)
                async with caller(srv.ws_url(f"team-{name}/{name}"), token(f"team-{name}", name)) as c:
                    await c.start()
                    await c.send({"type": "text", "text": "hello"})
                    await c.expect("response.done")
                (session,) = fb.sessions
                assert (session.start.agent_namespace, session.start.agent_name) == (f"team-{name}", name)
    finally:
        await a.stop(0)
        await b.stop(0)


async def test_unknown_agent_is_a_clear_error_not_a_hang() -> None:
    pattern = "rtvoice-bridge-{name}.{namespace}.svc.invalid:50051"
    async with (
        running_ingress(bridge_address_pattern=pattern, connect_timeout_s=1.5) as srv,
        caller(srv.ws_url("nowhere/ghost"), token("nowhere", "ghost")) as c,
    ):
        await c.send({"type": "session.start"})
        err = await c.expect("error", timeout_s=10)
        assert (err["kind"], err["code"], err["retryable"], err["fatal"]) == (
            "unavailable",
            "agent_unreachable",
            True,
            True,
        )
        assert "nowhere/ghost" in err["message"]
        assert (await c.expect("session.ended"))["reason"] == "agent_unreachable"
        await c.closed()
        assert c.ws.close_code == 1013
        assert not srv.router.endpoints()  # the failed channel was not kept


async def test_bridge_dies_mid_session() -> None:
    fb = await FakeBridge().start()
    async with running_ingress(fb.address) as srv, caller(srv.ws_url("default/assistant"), token()) as c:
        await c.start()
        await fb.next_session()
        await fb.stop(0)  # the bridge process goes away
        err = await c.expect("error")
        assert (err["kind"], err["code"], err["retryable"], err["fatal"]) == (
            "unavailable",
            "bridge_lost",
            True,
            True,
        )
        assert (await c.expect("session.ended"))["reason"] == "bridge_lost"
        await c.closed()


async def test_bridge_drops_the_stream_without_end() -> None:
    fb = await FakeBridge().start()
    try:
        async with running_ingress(fb.address) as srv, caller(srv.ws_url("default/assistant"), token()) as c:
            await c.start()
            (await fb.next_session()).drop_stream()
            err = await c.expect("error")
            assert (err["kind"], err["code"]) == ("unavailable", "bridge_lost")
            assert (await c.expect("session.ended"))["reason"] == "bridge_lost"
            # The next session on the same bridge works.
            async with caller(srv.ws_url("default/assistant"), token()) as c2:
                await c2.start()
                await c2.send({"type": "text", "text": "again"})
                await c2.expect("response.done")
    finally:
        await fb.stop(0)


async def test_bridge_not_ready_in_time() -> None:
    fb = await FakeBridge(ready_delay_s=3).start()
    try:
        async with (
            running_ingress(fb.address, ready_timeout_s=0.5) as srv,
            caller(srv.ws_url("default/assistant"), token()) as c,
        ):
            await c.send({"type": "session.start"})
            err = await c.expect("error")
            assert (err["kind"], err["code"], err["retryable"]) == ("unavailable", "bridge_timeout", True)
            assert (await c.expect("session.ended"))["reason"] == "bridge_lost"
    finally:
        await fb.stop(0)


async def test_concurrent_sessions_share_one_channel() -> None:
    fb = await FakeBridge().start()
    try:
        async with running_ingress(fb.address) as srv:

            async def one(i: int) -> None:
                async with caller(srv.ws_url("default/assistant"), token()) as c:
                    await c.start()
                    await c.send({"type": "text", "text": f"caller {i}"})
                    await c.expect("response.done")
                    await c.send({"type": "session.end"})
                    await c.expect("session.ended")

            await asyncio.gather(*(one(i) for i in range(8)))
            assert len(fb.sessions) == 8
            assert {s.end_reason for s in fb.sessions} == {"caller_hangup"}
    finally:
        await fb.stop(0)
