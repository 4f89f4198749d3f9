"""The bridge ends a session (drain): the ingress answers the bridge's EndFrame with its session span and a
half-close, and that span reaches the archive. Real ingress, real bridge, real recorder, OpenAI fake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import openai_settings, running_bridge
from tests.support.fake_openai import VALID_KEY, FakeOpenAI
from tests.support.ingress import caller, running_ingress, token
from tests.support.recorder import running_recorder


async def test_ingress_session_span_is_archived_when_the_bridge_ends_the_session(tmp_path: Path) -> None:
    async with (
        running_recorder(tmp_path) as recorder,
        FakeOpenAI() as fake,
        running_bridge(
            openai_settings(),
            provider_url=fake.url,
            api_key=VALID_KEY,
            recorder=f"127.0.0.1:{recorder.port}",
        ) as bridge,
        running_ingress(bridge.target) as srv,
        caller(srv.ws_url("default/assistant"), token()) as c,
    ):
        started = await c.start()
        (session,) = bridge.server.servicer.sessions
        session.shutdown(None, pb.END_REASON_BRIDGE_SHUTDOWN)
        ended = await c.expect("session.ended")
        spans_file = tmp_path / "archive" / started["session_id"] / "spans.json"
        for _ in range(250):
            if (spans_file.parent / "manifest.json").exists():
                break
            await asyncio.sleep(0.02)
    assert ended["reason"] == "bridge_shutdown"
    spans = [json.loads(line) for line in spans_file.read_text().splitlines() if line]
    roots = [s for s in spans if s["name"] == "ingress.session"]
    assert len(roots) == 1 and roots[0]["trace_id"] == started["trace_id"]
    assert roots[0]["attributes"]["end_reason"] == "bridge_shutdown"
