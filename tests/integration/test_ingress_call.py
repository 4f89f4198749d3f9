"""``rtvoice call`` against the ingress and the fake bridge (exit codes, conversion, state file)."""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from rtvoice.cli import main
from rtvoice.ingress.server import IngressServer
from tests.support.fake_bridge import FakeBridge
from tests.support.ingress import running_ingress, token
from tests.support.speech import synthesize_pcm16, write_wav

QUESTION = "what is the weather today"


@pytest.fixture
async def bridge() -> AsyncIterator[FakeBridge]:
    fb = await FakeBridge(reply_ms=500).start()
    yield fb
    await fb.stop(0)


@pytest.fixture
async def ingress(bridge: FakeBridge) -> AsyncIterator[IngressServer]:
    async with running_ingress(bridge.address) as srv:
        yield srv


async def rtvoice(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_call_with_a_wav_prints_transcripts_latency_and_saves_the_reply(
    ingress: IngressServer, bridge: FakeBridge, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = write_wav(tmp_path / "q.wav", QUESTION)
    reply = tmp_path / "reply.wav"
    url = ingress.ws_url("default/assistant")
    code = await rtvoice("call", str(wav), "--url", url, "--token", token(), "--save", str(reply), "--json")
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert any(line.startswith("connected: session ") for line in lines)
    assert "you: (speech)" in lines and "agent: you said (speech)" in lines
    assert any(line.startswith("first audio: ") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["answered"] is True and summary["first_audio_latency_ms"] > 0
    with wave.open(str(reply)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        assert w.getnframes() == 24000 * 500 // 1000
    (session,) = bridge.sessions
    assert session.end_reason == "caller_hangup"
    assert session.start.metadata["client.client"] == "rtvoice-call"
    sent = b"".join(f.audio.data for f in session.frames("audio"))
    speech = synthesize_pcm16(QUESTION)
    assert speech in sent  # the file's audio went through unchanged (16 kHz PCM16 in, 20 ms frames)


async def test_other_wav_formats_are_converted(
    ingress: IngressServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rtvoice.core.audio import resample_once

    mono = np.frombuffer(synthesize_pcm16(QUESTION), dtype="<i2")
    pcm = resample_once(
        np.concatenate([np.zeros(4000, np.int16), mono, np.zeros(8000, np.int16)]), 16000, 44100
    )
    as24 = (pcm.astype(np.int32) << 8).astype("<i4")
    stereo = np.repeat(as24[:, None], 2, axis=1).reshape(-1)
    raw = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in stereo[:200000])
    path = tmp_path / "stereo24.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(44100)
        w.writeframes(raw)
    code = await rtvoice("call", str(path), "--url", ingress.ws_url("default/assistant"), "--token", token())
    assert code == 0, capsys.readouterr().err


async def test_text_turn_and_state_file(
    ingress: IngressServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "up.json"
    state.write_text(json.dumps({"caller_url": ingress.ws_url("default/assistant"), "token": token()}))
    code = await rtvoice(
        "call",
        "--text",
        "hello there",
        "--state-file",
        str(state),
        "--output-format",
        "g711_mulaw",
        "--save",
        str(tmp_path / "r.wav"),
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "agent: you said hello there" in out
    with wave.open(str(tmp_path / "r.wav")) as w:
        assert w.getframerate() == 8000 and w.getsampwidth() == 2


async def test_failures_have_exit_codes_and_one_line(
    ingress: IngressServer, bridge: FakeBridge, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rtvoice.v1 import frames_pb2 as pb

    wav = write_wav(tmp_path / "q.wav", "hello", lead_silence_ms=100, tail_silence_ms=100)
    url = ingress.ws_url("default/assistant")

    async def check(expected: int, *args: str) -> str:
        code = await rtvoice("call", *args)
        err = capsys.readouterr().err
        assert code == expected, err
        assert err.count("\n") == 1 and err.startswith("rtvoice call: ")
        return err

    assert "401" in await check(4, str(wav), "--url", url, "--state-file", str(tmp_path / "none.json"))
    assert "403" in await check(4, str(wav), "--url", url, "--token", token("default", "other"))
    await check(3, str(wav), "--url", "ws://127.0.0.1:9/v1/agents/default/assistant", "--token", token())
    assert "rtvoice up" in await check(2, str(wav), "--state-file", str(tmp_path / "none.json"))
    (tmp_path / "bad.wav").write_bytes(b"RIFF1234WAVEfmt nonsense")
    assert "PCM WAV" in await check(2, str(tmp_path / "bad.wav"), "--url", url, "--token", token())
    bridge.auto_reply = False
    assert "did not answer" in await check(
        1, str(wav), "--url", url, "--token", token(), "--timeout-s", "0.5"
    )
    bridge.refuse = pb.ErrorFrame(
        kind=pb.ERROR_KIND_PROVIDER, code="quota", message="out of quota", fatal=True
    )
    assert "quota" in await check(5, str(wav), "--url", url, "--token", token())
