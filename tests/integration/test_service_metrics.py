"""Every service serves Prometheus ``/metrics`` (``--metrics-port 0``, port in the ready line) and reports
the live session during a call: the offline engine, the recorder, the bridge and the ingress, all real
processes on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.cluster import running_cluster, scrape, start_service
from tests.support.ingress import SECRET, caller, token


async def _until(url: str, name: str, value: float, timeout_s: float = 15.0) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        metrics = await scrape(url)
        if metrics.get(name) == value:
            return metrics
        if loop.time() > deadline:
            raise AssertionError(f"{url}: {name} = {metrics.get(name)}, expected {value}")
        await asyncio.sleep(0.05)


async def test_each_service_reports_the_live_session_on_metrics(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, bridges=1) as cluster:
        (bridge,) = cluster.bridges
        ingress = await start_service(
            "ingress",
            ["--port", "0", "--metrics-port", "0", "--bridge", bridge.address,
             "--internal-token-file", str(cluster.token_file)],
            tmp_path,
            env={"RTVOICE_AUTH_SECRET": SECRET.decode()},
        )  # fmt: skip
        cluster.processes.append(ingress)
        services = {
            "ingress": ingress,
            "bridge": bridge,
            "recorder": cluster.recorder,
            "localrt": cluster.engine,
        }
        for sp in services.values():
            assert isinstance(sp.ready["metrics_port"], int) and sp.ready["metrics_port"] > 0, sp.ready
        url = f"ws://127.0.0.1:{ingress.port}/v1/agents/default/weather"
        async with caller(url, token("default", "weather")) as c:
            started = await c.start()
            for name, sp in services.items():
                metrics = await _until(sp.metrics_url, f"rtvoice_{name}_active_sessions", 1.0)
                assert metrics[f"rtvoice_{name}_sessions_started_total"] >= 1.0, (name, metrics)
            await c.send({"type": "text", "text": "will it rain tomorrow"})
            await c.expect("response.done", timeout_s=30)
            await c.send({"type": "session.end"})
            assert (await c.expect("session.ended"))["reason"] == "caller_hangup"
        for name, sp in services.items():
            await _until(sp.metrics_url, f"rtvoice_{name}_active_sessions", 0.0)
        ingress_m = await scrape(ingress.metrics_url)
        assert ingress_m["rtvoice_ingress_sessions_ended_total{reason=caller_hangup}"] == 1.0
        assert ingress_m["rtvoice_ingress_frames_total{direction=in}"] >= 3  # start, text, end
        assert ingress_m["rtvoice_ingress_frames_total{direction=out}"] >= 3
        assert ingress_m["rtvoice_ingress_first_audio_latency_ms_count"] == 1.0
        bridge_m = await scrape(bridge.metrics_url)
        assert bridge_m["rtvoice_bridge_sessions_ended_total{reason=caller_hangup}"] == 1.0
        assert bridge_m["rtvoice_bridge_first_audio_latency_ms_count"] == 1.0
        assert bridge_m["rtvoice_bridge_frames_total{direction=out}"] > 10  # ready + agent audio
        recorder_m = await _until(
            cluster.recorder.metrics_url, "rtvoice_recorder_sessions_ended_total{reason=caller_hangup}", 1.0
        )
        assert recorder_m["rtvoice_recorder_frames_total{direction=in}"] > 10
        await _until(cluster.recorder.metrics_url, "rtvoice_recorder_pending_uploads", 0.0)
        assert "rtvoice_recorder_spool_bytes" in recorder_m
        assert cluster.manifest(started["session_id"]) is not None
        assert (await scrape(cluster.engine.metrics_url))["rtvoice_localrt_frames_total{direction=in}"] > 0
