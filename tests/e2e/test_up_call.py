"""Issue #2 end to end: `rtvoice call` against `rtvoice up` on real synthesized speech.

Everything is real: `rtvoice up` starts the offline engine, recorder, bridge and ingress as processes
on loopback; `rtvoice call` is run as a process too; the reply is recognized again by the engine's ASR.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtvoice.localrt.asr import get_recognizer
from tests.support.speech import write_wav
from tests.support.stack import UpInstance, running_up

QUESTION = "what is the weather today"
EXPECTED_REPLY = "you said what is the weather today"

pytestmark = pytest.mark.slow


async def _call(up: UpInstance, wav: Path, *extra: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtvoice",
        "call",
        str(wav),
        "--state-file",
        str(up.up_file),
        "--json",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _archive(up: UpInstance, session_id: str, timeout_s: float = 20.0) -> Path:
    folder = up.archive_dir / session_id
    for _ in range(int(timeout_s / 0.1)):
        if (folder / "manifest.json").exists():
            return folder
        await asyncio.sleep(0.1)
    raise AssertionError(f"no archive for {session_id} in {up.archive_dir}:\n{up.log_text()[-3000:]}")


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


async def test_killing_the_bridge_mid_session_gives_a_typed_error_and_a_complete_archive(
    tmp_path: Path,
) -> None:
    # A long question so the call is still streaming when the bridge dies.
    wav = write_wav(tmp_path / "long.wav", QUESTION, tail_silence_ms=6000)
    async with running_up(tmp_path) as up:
        call = asyncio.create_task(_call(up, wav))
        # Wait until the session exists at the recorder's spool, then kill the bridge hard.
        for _ in range(400):
            if " started (provider=" in up.log_text():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.8)  # mid-question: the caller is still speaking
        os.kill(up.pid_of("bridge"), signal.SIGKILL)
        rc, out, err = await call
        assert rc != 0
        summary = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else None
        text = out + err
        assert "bridge_lost" in text or "unavailable" in text, text
        session_id = summary["session_id"] if summary else text.split("session ")[1].split()[0]
        folder = await _archive(up, session_id)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["complete"] is False
        assert {"audio.wav", "transcript.json", "spans.json"} <= {p.name for p in folder.iterdir()}
        audio, channels, rate = _read_wav(folder / "audio.wav")
        assert channels == 2 and len(audio) // 2 / rate > 0.5
        # rtvoice up restarts the bridge on the same port: the next call works.
        ok = write_wav(tmp_path / "q2.wav", QUESTION)
        for _ in range(100):
            if "restarting it" in up.log_text():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        rc2, _, err2 = await _call(up, ok)
        assert rc2 == 0, err2
