"""The bridge records the true end reason when the ingress side goes away without an EndFrame: nobody hung
up, so the archive must not say ``caller_hangup`` (real offline engine as the provider)."""

from __future__ import annotations

import asyncio

from rtvoice.core.settings import parse_settings
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import CapturingRecorder, ConverseClient, capture_recorders, running_bridge
from tests.support.localrt import local_realtime

SETTINGS = {"provider": "local", "turnDetection": {"type": "server_vad", "silenceDurationMs": 300}}


async def _recorded_end(recs: list[CapturingRecorder], timeout_s: float = 10.0) -> pb.EndFrame:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (recs and recs[0].end is not None):
        assert asyncio.get_running_loop().time() < deadline, "the recorder got no EndFrame"
        await asyncio.sleep(0.02)
    end = recs[0].end
    assert end is not None
    return end


async def test_stream_closed_without_end_frame_is_caller_disconnected() -> None:
    recs, factory = capture_recorders()
    async with (
        local_realtime(["hello there"]) as url,
        running_bridge(parse_settings(SETTINGS), provider_url=url, recorder_factory=factory) as bridge,
    ):
        async with ConverseClient(bridge.target) as call:
            assert (await call.start()).WhichOneof("frame") == "ready"
            await call.half_close()
            end = await _recorded_end(recs)
    assert end.reason == pb.END_REASON_CALLER_DISCONNECTED


async def test_cancelled_rpc_is_caller_disconnected() -> None:
    recs, factory = capture_recorders()
    async with (
        local_realtime(["hello there"]) as url,
        running_bridge(parse_settings(SETTINGS), provider_url=url, recorder_factory=factory) as bridge,
    ):
        async with ConverseClient(bridge.target) as call:  # leaving it cancels the RPC: the ingress died
            assert (await call.start()).WhichOneof("frame") == "ready"
        end = await _recorded_end(recs)
    assert end.reason == pb.END_REASON_CALLER_DISCONNECTED
