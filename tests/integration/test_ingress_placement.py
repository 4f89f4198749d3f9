"""The ingress's placement against scripted bridges (the fake bridge, in-process): a bridge refusing with
``full`` or ``draining`` is skipped invisibly, a caller nobody can take gets ``full`` with
``retry_after_ms``, other refusals reach the caller as they are, and ``dns:///`` targets resolve."""

from __future__ import annotations

from rtvoice.v1 import frames_pb2 as pb
from tests.support.fake_bridge import FakeBridge
from tests.support.ingress import caller, running_ingress, token


def _refusal(code: str, retry_after_ms: int = 0) -> pb.ErrorFrame:
    return pb.ErrorFrame(
        kind=pb.ERROR_KIND_UNAVAILABLE, code=code, retryable=True, fatal=True, retry_after_ms=retry_after_ms
    )


async def test_a_full_bridge_is_skipped_without_the_caller_noticing() -> None:
    full = await FakeBridge(refuse=_refusal("full", 700)).start()
    ok = await FakeBridge().start()
    try:
        async with running_ingress(f"{full.address},{ok.address}") as srv:
            for _ in range(4):
                async with caller(srv.ws_url("default/assistant"), token()) as c:
                    await c.start()
                    await c.send({"type": "text", "text": "hello"})
                    await c.expect("response.done")
                    await c.send({"type": "session.end"})
                    assert (await c.expect("session.ended"))["reason"] == "caller_hangup"
                    assert c.of_type("error") == []
        assert len(ok.sessions) == 4
        assert len(full.sessions) == 1  # tried once, then skipped for retry_after_ms
    finally:
        await full.stop(0)
        await ok.stop(0)


async def test_when_no_bridge_can_take_the_call_the_caller_gets_full_with_retry_after() -> None:
    full = await FakeBridge(refuse=_refusal("full", 700)).start()
    draining = await FakeBridge(refuse=_refusal("draining")).start()
    try:
        async with (
            running_ingress(f"{full.address},{draining.address}") as srv,
            caller(srv.ws_url("default/assistant"), token()) as c,
        ):
            await c.send({"type": "session.start"})
            err = await c.expect("error")
            assert (err["kind"], err["code"], err["retryable"], err["fatal"], err["retry_after_ms"]) == (
                "unavailable",
                "full",
                True,
                True,
                700,
            )
            assert (await c.expect("session.ended"))["reason"] == "bridge_refused"
            await c.closed()
            assert c.ws.close_code == 1013
        assert (len(full.sessions), len(draining.sessions)) == (1, 1)  # both tried, same session id
        assert full.sessions[0].start.session_id == draining.sessions[0].start.session_id
    finally:
        await full.stop(0)
        await draining.stop(0)


async def test_other_refusals_reach_the_caller_and_are_not_retried() -> None:
    bad = await FakeBridge(
        refuse=pb.ErrorFrame(kind=pb.ERROR_KIND_PROTOCOL, code="invalid_settings", message="no", fatal=True)
    ).start()
    try:
        async with (
            running_ingress(bad.address) as srv,
            caller(srv.ws_url("default/assistant"), token()) as c,
        ):
            await c.send({"type": "session.start"})
            assert (await c.expect("error"))["code"] == "invalid_settings"
            assert (await c.expect("session.ended"))["reason"] == "provider_error"
        assert len(bad.sessions) == 1
    finally:
        await bad.stop(0)


async def test_a_dns_target_resolves_to_the_bridge() -> None:
    fb = await FakeBridge().start()
    try:
        async with (
            running_ingress(f"dns:///localhost:{fb.port}") as srv,
            caller(srv.ws_url("default/assistant"), token()) as c,
        ):
            await c.start()
            await c.send({"type": "text", "text": "hello"})
            await c.expect("response.done")
        assert len(fb.sessions) == 1
    finally:
        await fb.stop(0)
