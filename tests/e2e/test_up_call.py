"""Issue #2 end to end: `rtvoice call` against `rtvoice up` on real synthesized speech.

Everything is real: `rtvoice up` starts the offline engine, recorder, bridge and ingress as processes
on loopback; `rtvoice call` is run as a process too; the reply is recognized again by the engine's ASR.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtvoice.localrt.asr import get_recognizer
from tests.e2e.calls import run_call as _call
from tests.e2e.calls import summary_of
from tests.e2e.calls import wait_archive as _archive
from tests.support.speech import write_wav
from tests.support.stack import UpInstance, running_up

QUESTION = "what is the weather today"
EXPECTED_REPLY = "you said what is the weather today"

pytestmark = pytest.mark.slow


def _read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data, w.getnchannels(), w.getframerate()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0


async def test_spoken_question_is_answered_and_archived(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "question.wav", QUESTION)
    async with running_up(tmp_path) as up:
        rc, out, err = await _call(up, wav, "--save", str(tmp_path / "reply.wav"))
        assert rc == 0, f"rtvoice call failed ({rc}): {err}\n{out}"
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        # Human-readable progress is printed too.
        assert f"you: {QUESTION}" in out and "first audio:" in out

        # The user transcript matches exactly (phrase-list mode); the agent answered.
        turns = {t["role"]: t["text"] for t in summary["transcripts"]}
        assert turns["user"] == QUESTION
        assert turns["assistant"].lower().startswith("you said")
        assert summary["first_audio_latency_ms"] is not None and summary["first_audio_latency_ms"] > 0

        # The reply audio is real speech that says the expected reply when recognized again.
        reply, channels, rate = _read_wav(tmp_path / "reply.wav")
        assert channels == 1 and reply.size > rate // 2 and _rms(reply) > 300
        from rtvoice.core.audio import resample_once

        heard = await asyncio.to_thread(
            get_recognizer().recognize,
            resample_once(reply, rate, 16000),
            [EXPECTED_REPLY, "you said will it rain tomorrow", "sorry i did not catch that"],
        )
        assert heard == EXPECTED_REPLY

        # The archive holds all four files and agrees with the call.
        folder = await _archive(up, summary["session_id"])
        names = {p.name for p in folder.iterdir()}
        assert {"audio.wav", "transcript.json", "manifest.json", "spans.json"} <= names
        manifest = json.loads((folder / "manifest.json").read_text())
        transcript = json.loads((folder / "transcript.json").read_text())
        roles = [t["role"] for t in transcript["turns"]]
        assert roles.count("user") == 1 and roles.count("assistant") == 1
        assert next(t["text"] for t in transcript["turns"] if t["role"] == "user") == QUESTION
        assert manifest["complete"] is True
        assert "apiKey" not in json.dumps(manifest) and up.token not in json.dumps(manifest)

        # One trace follows the call: every archived span carries the trace id the ingress minted
        # (sent to the caller in session.started), and the bridge's session span is parented on the
        # ingress's span named in the traceparent.
        trace_id = summary["trace_id"]
        assert isinstance(trace_id, str) and len(trace_id) == 32
        spans = [json.loads(line) for line in (folder / "spans.json").read_text().splitlines() if line]
        assert spans and {s["trace_id"] for s in spans} == {trace_id}
        assert manifest["trace_id"] == trace_id
        bridge_root = next(s for s in spans if s["name"] == "session")
        ingress_root = next(s for s in spans if s["name"] == "ingress.session")
        assert ingress_root["parent_span_id"] is None
        assert bridge_root["parent_span_id"] == ingress_root["span_id"]
        assert ingress_root["attributes"]["end_reason"] == "caller_hangup"
        connect = next(s for s in spans if s["name"] == "ingress.connect")
        assert connect["parent_span_id"] == ingress_root["span_id"] and connect["attributes"]["ok"] is True
        assert ingress_root["start_unix_ns"] <= connect["start_unix_ns"] <= bridge_root["start_unix_ns"]

        # audio.wav: stereo, length matches the session ±100 ms, each side audible where it spoke.
        audio, channels, rate = _read_wav(folder / "audio.wav")
        assert channels == 2
        stereo = audio.reshape(-1, 2)
        assert abs(len(stereo) / rate * 1000 - manifest["duration_ms"]) <= 100
        for turn in transcript["turns"]:
            ch = 0 if turn["role"] == "user" else 1
            seg = stereo[int(turn["start_ms"] * rate / 1000) : int(turn["end_ms"] * rate / 1000), ch]
            assert _rms(seg) > 300, f"{turn['role']} channel silent where it spoke"
        # The caller channel is silent while the agent speaks (no echo, real silence).
        agent = next(t for t in transcript["turns"] if t["role"] == "assistant")
        quiet = stereo[int(agent["start_ms"] * rate / 1000) : int(agent["end_ms"] * rate / 1000), 0]
        assert _rms(quiet) < 50
        turn_lat = manifest["latency"][0]
        assert turn_lat["first_audio_ms"] > 0 and turn_lat["turn_complete_ms"] >= turn_lat["first_audio_ms"]


async def _caller_audio_spooled(up: UpInstance, min_ms: float) -> None:
    """Wait until the recorder's spool holds ``min_ms`` of one session's caller audio (PCM16 16 kHz)."""
    spool = up.state_dir / "spool"
    deadline = asyncio.get_running_loop().time() + 30
    while not any(p.stat().st_size >= min_ms * 32 for p in spool.glob("*/caller.pcm")):
        assert asyncio.get_running_loop().time() < deadline, (
            f"no caller audio spooled:\n{up.log_text()[-3000:]}"
        )
        await asyncio.sleep(0.05)


async def _restarted(up: UpInstance, service: str, old_pid: int) -> None:
    """Wait until `rtvoice up` has restarted ``service`` and it is ready (up.json names its new pid)."""
    deadline = asyncio.get_running_loop().time() + 60
    while json.loads(up.up_file.read_text())["pids"][service] == old_pid:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{service} not restarted:\n{up.log_text()[-3000:]}"
        )
        await asyncio.sleep(0.1)


async def test_killing_the_bridge_mid_session_gives_a_typed_error_and_a_complete_archive(
    tmp_path: Path,
) -> None:
    # A long question so the call is still streaming when the bridge dies.
    wav = write_wav(tmp_path / "long.wav", QUESTION, tail_silence_ms=6000)
    async with running_up(tmp_path) as up:
        call = asyncio.create_task(_call(up, wav))
        # Mid-question (the caller is still speaking, 0.8 s of it recorded), kill the bridge hard.
        await _caller_audio_spooled(up, 800)
        bridge_pid = up.pid_of("bridge")
        os.kill(bridge_pid, signal.SIGKILL)
        rc, out, err = await call
        assert rc == 5, f"rtvoice call: {rc}\n{out}\n{err}"
        summary = summary_of(out)
        assert summary["ended_reason"] == "bridge_lost", out
        assert any(e["code"] == "bridge_lost" and e["retryable"] for e in summary["errors"]), out
        folder = await _archive(up, summary["session_id"])
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["complete"] is False
        assert {"audio.wav", "transcript.json", "spans.json"} <= {p.name for p in folder.iterdir()}
        audio, channels, rate = _read_wav(folder / "audio.wav")
        assert channels == 2 and len(audio) // 2 / rate > 0.5
        # rtvoice up restarts the bridge on the same port: the next call works.
        ok = write_wav(tmp_path / "q2.wav", QUESTION)
        await _restarted(up, "bridge", bridge_pid)
        rc2, _, err2 = await _call(up, ok)
        assert rc2 == 0, err2
