"""The web page in headless Chromium against the whole stack (``rtvoice up``: local engine, bridge,
recorder, ingress): a spoken question reaches the agent, the reply plays, both turns show, and talking
over the reply (barge-in) clears playback at once while the bridge truncates at the played position.

The fake microphone is fed from a WAV synthesized at test time (espeak-ng); echo cancellation, noise
suppression and AGC are off (``aec=0&ns=0&agc=0``) because they mangle file-fed audio.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.support.speech import silence_pcm16, synthesize_pcm16
from tests.support.stack import running_up

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
QUESTION = "what is the weather today"
BARGE_IN = "turn on the lights"
# The reply to QUESTION (the local engine's echo responder, ~2 s of speech) starts ~0.6 s after the
# question ends; the caller talks over it ~1.2 s after the question.
GAP_BEFORE_BARGE_IN_MS = 1200

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def mic_wav(path: Path) -> Path:
    pcm = (
        # The fake mic starts playing at getUserMedia; audio before `session.started` is not sent, and
        # session set-up can take a second on a loaded machine: lead in with enough silence.
        silence_pcm16(1500)
        + synthesize_pcm16(QUESTION)
        + silence_pcm16(GAP_BEFORE_BARGE_IN_MS)
        + synthesize_pcm16(BARGE_IN)
        + silence_pcm16(5000)
    )
    with wave.open(str(path), "wb") as w:  # 16-bit mono: Chromium refuses 24-bit silently
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    return path


async def wait_for(page: Any, condition: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        # One snapshot: the condition is judged on exactly the stats returned.
        got: dict[str, Any] = await page.evaluate(
            f"(() => {{ const s = JSON.parse(JSON.stringify(window.rtvoiceStats)); "
            f"return {{ ok: !!((s => {condition})(s)), s }}; }})()"
        )
        stats: dict[str, Any] = got["s"]
        if got["ok"]:
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}: {json.dumps(stats)[:2000]}")
        await asyncio.sleep(0.1)


def barge_in_spans(archive_dir: Path, session_id: str) -> list[dict[str, Any]]:
    for spans_file in archive_dir.rglob("spans.json"):
        if session_id in str(spans_file.parent):
            spans = [
                json.loads(line) for line in spans_file.read_text().splitlines() if line.strip()
            ]  # JSON lines
            return [s for s in spans if s.get("name") == "barge_in"]
    return []


async def test_spoken_call_reply_transcript_and_barge_in(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    wav = mic_wav(tmp_path / "mic.wav")
    async with running_up(tmp_path) as up, async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"],
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            await page.goto(f"{up.page_url}&aec=0&ns=0&agc=0")
            await page.click("#call")
            await wait_for(page, "s.state === 'live'", 20)
            # The question is recognized and answered; the reply plays.
            await wait_for(page, "s.transcript.some(t => t.role === 'assistant' && t.final)", 25)
            # The caller talks over the reply: audio.clear, playback stops within a render quantum.
            stats = await wait_for(page, "s.lastClear !== null", 20)
            # The second question is answered too; then hang up.
            stats = await wait_for(
                page,
                f"s.transcript.filter(t => t.role === 'user' && t.text.includes('{BARGE_IN}')).length > 0 "
                "&& s.transcript.filter(t => t.role === 'assistant' && t.final).length >= 2",
                25,
            )
            await page.click("#hangup")
            stats = await wait_for(page, "s.endedReason !== null", 10)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "browser_call.png"), full_page=True)
            assert "Call ended." in await page.inner_text("#message")
        finally:
            await context.close()
        assert not page_errors, page_errors

        users = [t["text"] for t in stats["transcript"] if t["role"] == "user"]
        agents = [t["text"] for t in stats["transcript"] if t["role"] == "assistant"]
        assert users[0] == QUESTION and any(BARGE_IN in u for u in users[1:]), users
        assert QUESTION in agents[0].lower(), agents
        assert stats["playedSamples"] > stats["outputRate"] // 2  # more than 0.5 s really played
        assert stats["marksSent"] > 5 and stats["latenciesMs"] and stats["serverLatenciesMs"]
        assert stats["endedReason"] == "caller_hangup" and not stats["errors"]
        cleared = stats["lastClear"]
        # The page marks the cut answer as interrupted (the caller did not hear the rest).
        cut = [t for t in stats["transcript"] if t["item_id"] == cleared["item_id"]]
        assert cut and all(t.get("interrupted") for t in cut), stats["transcript"]
        # Nothing of the cleared item played after the clear (one render quantum = 128 samples ≈ 5 ms).
        assert stats["itemPlayedMs"][cleared["item_id"]] - cleared["played_ms"] <= 6, stats
        # The bridge cut the agent's reply at the position the page reported playing.
        deadline = time.monotonic() + 15
        spans: list[dict[str, Any]] = []
        while not spans and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            spans = barge_in_spans(up.archive_dir, stats["sessionId"])
    assert spans, f"no barge_in span for session {stats['sessionId']} under {up.archive_dir}"
    attrs = spans[0]["attributes"]
    assert attrs["item_id"] == cleared["item_id"]
    assert (
        0 < attrs["played_ms"] <= cleared["played_ms"] and cleared["played_ms"] - attrs["played_ms"] <= 300
    ), (
        attrs,
        cleared,
    )
