"""Graceful overload of one whole stack: `rtvoice up` (one worker per service) with a bridge capacity of
4 sessions, called by 12 real callers at once (3x capacity) speaking synthesized speech at real-time pace
to an OpenAI Realtime fake on loopback.

What must hold: exactly the capacity is admitted and every other caller is refused with the typed,
retryable ``full`` error carrying ``retry_after_ms``; every admitted call is answered, ends with
``session.ended`` ``caller_hangup`` and is archived complete, and its archive holds every caller frame
the caller sent (counted against the caller's own count) with nothing dropped anywhere.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rtvoice.caller.client import CallError, CallOptions, CallResult, place_call
from tests.e2e.calls import speech_call, up_on_fake, wait_archive
from tests.support.fake_openai import FakeOpenAI, Scenario

pytestmark = pytest.mark.slow

CAPACITY = 4
CALLERS = 3 * CAPACITY


async def _call(opts: CallOptions) -> tuple[CallResult, CallError | None]:
    try:
        return await place_call(opts, on_line=lambda _line: None), None
    except CallError as err:
        result = getattr(err, "result", None)
        return (result if isinstance(result, CallResult) else CallResult()), err


def _refused_full(result: CallResult) -> bool:
    return any(
        e.get("code") == "full" and e.get("retryable") and int(e.get("retry_after_ms", 0)) > 0
        for e in result.errors
    )


async def test_three_times_capacity_admits_capacity_and_archives_every_frame(tmp_path: Path) -> None:
    scenario = Scenario(reply_audio_ms=600, chunk_ms=40, pace_s=0.02)
    async with (
        FakeOpenAI(scenario) as fake,
        up_on_fake(
            tmp_path, fake, "--workers", "1", env={"RTVOICE_BRIDGE_MAX_SESSIONS": str(CAPACITY)}
        ) as up,
    ):
        # stay on the line after the answer, so all 12 calls overlap
        opts = speech_call(up, tmp_path, "what is the weather today", hold_s=1.0)
        outcomes = await asyncio.gather(*(_call(opts) for _ in range(CALLERS)))

        admitted = [r for r, err in outcomes if r.session_id and not _refused_full(r)]
        refused = [(r, err) for r, err in outcomes if _refused_full(r)]
        assert len(admitted) == CAPACITY, [(r.session_id, r.errors, err) for r, err in outcomes]
        assert len(refused) == CALLERS - CAPACITY, [(r.errors, err) for r, err in outcomes]
        for r, err in refused:
            assert err is not None and r.first_audio_latency_ms is None  # refused before any audio

        for r in admitted:
            assert r.ended_reason == "caller_hangup", (r.session_id, r.ended_reason, r.errors)
            assert r.first_audio_latency_ms is not None, r.session_id  # answered
            assert r.frames_sent > 0
        for r in admitted:
            folder = await wait_archive(up, r.session_id)
            manifest = json.loads((folder / "manifest.json").read_text())
            counts = manifest["counts"]
            assert manifest["complete"] is True, manifest
            assert manifest["end_reason"] == "caller_hangup"
            # Every caller frame sent is in the archive: the recorder counts frames the ingress merged.
            assert counts["caller_audio_frames"] == r.frames_sent, (counts, r.frames_sent)
            assert counts["caller_audio_ms"] == pytest.approx(r.frames_sent * 20, abs=1.0)
            dropped = {k: v for k, v in counts.items() if "dropped" in k and v}
            assert not dropped, dropped
