"""Placement of calls over several real ``rtvoice bridge`` processes behind one ingress (offline engine,
recorder, internal token; all on loopback): an even spread, a bridge draining under load, a rolling
restart, and overload (typed ``full`` refusals, admitted calls untouched)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtvoice.core.internal_auth import InternalCredentials
from rtvoice.ingress.endpoints import Health
from rtvoice.ingress.server import IngressServer
from tests.support.cluster import CallOutcome, Cluster, call_once, running_cluster, scrape
from tests.support.ingress import running_ingress, token, upgrade_status

pytestmark = pytest.mark.slow
AGENT = "default/weather"


async def _load(
    ingress: IngressServer,
    total: int,
    concurrency: int,
    hold_s: float,
    on_started: Callable[[int], None] | None = None,
) -> list[CallOutcome]:
    """``total`` calls, at most ``concurrency`` at a time; ``on_started(n)`` after the n-th start."""
    url, tok = ingress.ws_url(AGENT), token("default", "weather")
    gate = asyncio.Semaphore(concurrency)
    started = 0

    async def one() -> CallOutcome:
        nonlocal started
        async with gate:
            out = await call_once(url, tok, hold_s=hold_s)
            if out.started is not None:
                started += 1
                if on_started is not None:
                    on_started(started)
            return out

    return list(await asyncio.gather(*(one() for _ in range(total))))


def _ingress(cluster: Cluster, **config: Any) -> contextlib.AbstractAsyncContextManager[IngressServer]:
    return running_ingress(
        cluster.bridge_target,
        internal_credentials=InternalCredentials(cluster.token_file),
        connect_timeout_s=3.0,
        ready_timeout_s=15.0,
        **config,
    )


def _assert_clean(outcomes: list[CallOutcome]) -> None:
    """0 refused, 0 dropped: every call started and ended by its own hang-up."""
    refused = [o for o in outcomes if o.started is None]
    dropped = [
        o for o in outcomes if o.started is not None and (o.ended or {}).get("reason") != "caller_hangup"
    ]
    assert not refused, [(o.http_status, o.errors, o.ended) for o in refused]
    assert not dropped, [(o.ended, o.errors) for o in dropped]


async def _all_archived(cluster: Cluster, outcomes: list[CallOutcome], timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    missing = [o.session_id for o in outcomes if o.started is not None]
    while missing:
        missing = [sid for sid in missing if cluster.manifest(sid) is None]
        assert loop.time() < deadline, f"{len(missing)} call(s) not archived: {missing[:5]}"
        await asyncio.sleep(0.1)
    for o in outcomes:
        if o.started is not None:
            manifest = cluster.manifest(o.session_id)
            assert manifest is not None and manifest["end_reason"] == "caller_hangup", manifest


async def test_sixty_sessions_spread_evenly_over_three_bridges(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, bridges=3) as cluster, _ingress(cluster) as ingress:
        outcomes: list[CallOutcome] = []
        for _batch in range(4):  # 15 concurrent calls at a time: placement sees live load, not just turns
            outcomes += await _load(ingress, 15, 15, hold_s=0.5)
        _assert_clean(outcomes)
        counts = [
            (await scrape(b.metrics_url))["rtvoice_bridge_sessions_started_total"] for b in cluster.bridges
        ]
        assert sum(counts) == 60
        assert all(16 <= c <= 24 for c in counts), counts  # within ±20 % of 20 each


async def test_a_draining_bridge_refuses_nothing_and_drops_nothing(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, bridges=3) as cluster, _ingress(cluster) as ingress:
        victim = cluster.bridges[0]
        drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def mid_load(n: int) -> None:
            if n == 10 and not drained.done():
                victim.proc.send_signal(signal.SIGTERM)
                drained.set_result(None)

        outcomes = await _load(ingress, 36, 6, hold_s=0.6, on_started=mid_load)
        assert drained.done()
        _assert_clean(outcomes)
        assert await victim.stop() == 0
        assert "asked to reconnect" not in victim.log()  # its live calls finished on their own
        await _all_archived(cluster, outcomes)


async def _until_serving(ingress: IngressServer, address: str, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not any(ep.address == address and ep.health is Health.SERVING for ep in ingress.router.endpoints()):
        assert loop.time() < deadline, f"the ingress never saw {address} serving again"
        await asyncio.sleep(0.05)


async def test_rolling_restart_under_load_refuses_and_drops_nothing(tmp_path: Path) -> None:
    async with (
        running_cluster(tmp_path, bridges=3, fixed_ports=True) as cluster,
        _ingress(cluster) as ingress,
    ):
        stop_load = asyncio.Event()
        outcomes: list[CallOutcome] = []

        async def steady_load() -> None:
            while not stop_load.is_set():
                outcomes.extend(await _load(ingress, 4, 4, hold_s=0.4))

        load = asyncio.create_task(steady_load())
        await asyncio.sleep(1.0)  # let the load run before the first restart
        for i, old in enumerate(list(cluster.bridges)):
            assert await old.stop(signal.SIGTERM) == 0
            new = await cluster.start_bridge(old.port, name=f"bridge-{i}-restarted")
            cluster.bridges[i] = new
            await _until_serving(ingress, new.address)
        stop_load.set()
        await load
        assert len(outcomes) >= 12
        _assert_clean(outcomes)
        await _all_archived(cluster, outcomes)


async def test_overload_admits_up_to_capacity_and_refuses_the_rest_with_full(tmp_path: Path) -> None:
    async with (
        running_cluster(tmp_path, bridges=1, bridge_extra=("--max-sessions", "3")) as cluster,
        _ingress(cluster) as ingress,
    ):
        outcomes = await _load(ingress, 9, 9, hold_s=2.0)  # 3x capacity, all at once
        admitted = [o for o in outcomes if o.started is not None]
        refused = [o for o in outcomes if o.started is None]
        assert len(admitted) == 3, [(o.http_status, o.errors) for o in outcomes]
        wrong = [(o.http_status, o.retry_after, o.errors, o.ended) for o in refused if not o.refused_full]
        assert not wrong, wrong
        for o in refused:
            if o.ended is not None:  # refused after the upgrade: a typed error, then session.ended
                assert o.ended["reason"] == "bridge_refused" and o.close_code == 1013
        _assert_clean(admitted)
        await _all_archived(cluster, admitted)
        # Below capacity again, the bridge takes calls (health back to SERVING).
        await _until_serving(ingress, cluster.bridges[0].address)
        again = await _load(ingress, 3, 3, hold_s=0.2)
        _assert_clean(again)


async def test_ingress_at_capacity_answers_503_with_retry_after(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, bridges=1) as cluster, _ingress(cluster, max_sessions=1) as ingress:
        url, tok = ingress.ws_url(AGENT), token("default", "weather")
        held = asyncio.create_task(call_once(url, tok, hold_s=1.5))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not ingress.sessions:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        refused = await call_once(url, tok)
        assert (refused.http_status, refused.retry_after) == (503, "2")
        assert await upgrade_status(url, {"Authorization": f"Bearer {tok}"}) == 503
        assert ((await held).ended or {}).get("reason") == "caller_hangup"
