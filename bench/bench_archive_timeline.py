"""How true is the archive's timeline? Per-turn error of the archive against a known-signal caller.

Usage: python bench/bench_archive_timeline.py [--runs 2]

The caller is a known signal streamed in real time (tone bursts at known sample positions: speech at
300–1300 ms and 2800–4200 ms of the call) through the real bridge to the fake OpenAI Realtime server,
every frame teed to the real recorder. For each disruption between the two turns (none, provider close
1001, TCP drop, session expiry, recycle, voice switch), the bench prints how far the archive's user
turns (start/end, ms) and the second turn's first-audio latency (manifest and bridge span) are from the
truth, which the caller knows: where it put each burst and when it received the agent's first audio.
The scenarios and the truth are the ones of tests/integration/test_bridge_session_clock.py, which
asserts bounds (±40 ms turns, ±50 ms latency); this prints the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.test_bridge_session_clock import (  # noqa: E402
    BURSTS,
    CASES,
    TOTAL_MS,
    Run,
    converse,
    true_first_audio_ms,
)
from tests.support.bridge import openai_call  # noqa: E402


def turn_errors(run: Run) -> list[float]:
    """|archived − true| ms of every user turn start and end."""
    turns = json.loads(run.oc.archive_files["transcript.json"])["turns"]
    user = [(t["start_ms"], t["end_ms"]) for t in turns if t["role"] == "user"]
    errors: list[float] = []
    for (start, end), (s, d) in zip(user, BURSTS, strict=False):
        errors += [abs(start - s), abs((end if end is not None else float("inf")) - (s + d))]
    return errors + [float("inf")] * (2 * len(BURSTS) - len(errors))


def latency_errors(run: Run) -> tuple[float, float, float]:
    """(truth, manifest − truth, bridge span − truth) of the second turn's first-audio latency, ms."""
    speech_end = BURSTS[1][0] + BURSTS[1][1]
    truth = true_first_audio_ms(run, 1, speech_end)
    assert run.oc.manifest is not None
    archived = run.oc.manifest["latency"][1]["first_audio_ms"]
    (rec,) = run.oc.recorders
    span = [s for s in rec.spans if s.name == "response"][1].attributes["first_audio_ms"]
    return truth, (archived - truth) if archived is not None else float("nan"), span - truth


async def one(case: str) -> tuple[list[float], tuple[float, float, float]]:
    opts: dict[str, Any] = dict(CASES.get(case, {}))
    between = opts.pop("between", None)
    async with openai_call(wait_ready=False, **opts) as oc:
        run = await converse(oc, BURSTS, TOTAL_MS, responses=2, between=between)
    return turn_errors(run), latency_errors(run)


async def main(runs: int) -> None:
    print("per-turn error of the archive against the known signal (ms; |archived − true|)")
    print(
        f"{'disruption':16s} | turn start/end error mean  max"
        " | turn-2 first audio: truth  manifest−truth  span−truth"
    )
    for case in ["none", *CASES]:
        errs: list[float] = []
        lat: list[tuple[float, float, float]] = []
        for _ in range(runs):
            e, la = await one(case)
            errs += e
            lat.append(la)
        print(
            f"{case:16s} | {statistics.fmean(errs):24.1f} {max(errs):5.1f}"
            f" | {statistics.fmean(x[0] for x in lat):19.1f} {statistics.fmean(x[1] for x in lat):+15.1f}"
            f" {statistics.fmean(x[2] for x in lat):+11.1f}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="runs per disruption")
    asyncio.run(main(ap.parse_args().runs))
