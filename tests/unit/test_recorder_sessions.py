"""``rtvoice sessions list / show / report`` on archives made by a real recorder."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from rtvoice.recorder.archive_source import LocalArchive
from rtvoice.recorder.cli import register
from rtvoice.recorder.sessions_cmd import sessions_list, sessions_report, sessions_show
from tests.support.recorder import STARTED_UNIX_NS, conversation, running_recorder, send_session

HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two recorded conversations, the second one an hour later."""
    import asyncio

    tmp = tmp_path_factory.mktemp("sessions")

    async def record() -> None:
        async with running_recorder(tmp) as server:
            for i, sid in enumerate(("conv-early", "conv-late")):
                f = conversation(sid, started_unix_ns=STARTED_UNIX_NS + i * HOUR_NS)
                acks = await send_session(server.port, f.frames)
                assert acks[-1].finalized

    asyncio.run(record())
    return tmp / "archive"


def test_list_newest_first(archive: Path) -> None:
    out = io.StringIO()
    assert sessions_list(LocalArchive(archive), out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["SESSION", "AGENT", "STARTED", "(UTC)", "DURATION", "TURNS", "END"]
    assert lines[1].split()[:3] == ["conv-late", "default/echo", "2026-01-02T04:04:05.000Z"]
    assert lines[2].split()[:3] == ["conv-early", "default/echo", "2026-01-02T03:04:05.000Z"]
    assert lines[1].split()[-3:] == ["s", "4", "caller_hangup"]
    assert "2 session(s)" in lines[-1]


def test_show_transcript_latencies_and_files(archive: Path) -> None:
    out = io.StringIO()
    assert sessions_show(LocalArchive(archive), "conv-early", out) == 0
    text = out.getvalue()
    assert "Session conv-early  agent default/echo  provider local  model local-echo" in text
    assert "Transcript (4 turns):" in text
    assert "   0.50s -" in text and "user      what is the weather today" in text
    assert "assistant It is sunny." in text and "user      thanks, bye" in text
    assert "RESPONSE  FIRST AUDIO  TURN COMPLETE  STATUS" in text
    assert "r2        300 ms       500 ms         completed" in text
    for name in ("audio.wav", "transcript.json", "spans.json"):
        assert name in text
    assert "errors 1" in text


def test_show_unknown_ambiguous_and_prefix(archive: Path) -> None:
    out = io.StringIO()
    assert sessions_show(LocalArchive(archive), "nope", out) == 1
    assert out.getvalue().startswith("No session 'nope' in archive folder")
    out = io.StringIO()
    assert sessions_show(LocalArchive(archive), "conv-", out) == 1
    assert "matches 2 sessions" in out.getvalue()
    out = io.StringIO()
    assert sessions_show(LocalArchive(archive), "conv-l", out) == 0
    assert "Session conv-late" in out.getvalue()


def test_report_percentiles_and_plot(archive: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    png = tmp_path / "plots" / "latency.png"
    assert sessions_report(LocalArchive(archive), out, plot=png) == 0
    rows = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[1:4]}
    assert rows["first_audio_ms"][1] == "4"  # two responses per session
    assert rows["turn_complete_ms"][1] == "4"
    # first audio: 450 ms (spoken turn) and 300 ms (typed turn) in both sessions
    p50, p95 = float(rows["first_audio_ms"][2]), float(rows["first_audio_ms"][4])
    assert abs(p50 - 375) <= 1 and abs(p95 - 450) <= 1.5
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_archive_and_cli_wiring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="rtvoice")
    register(parser.add_subparsers())
    args = parser.parse_args(["sessions", "--archive-dir", str(tmp_path / "none"), "list"])
    assert args.func(args) == 1
    assert capsys.readouterr().out == f"No archived sessions in archive folder {tmp_path / 'none'}.\n"
    args = parser.parse_args(["sessions", "--archive-dir", str(tmp_path), "report"])
    assert args.func(args) == 1
    args = parser.parse_args(["sessions", "--s3-endpoint", "127.0.0.1:9", "list"])
    assert args.func(args) == 2
    assert "needs both --s3-endpoint and --s3-bucket" in capsys.readouterr().err
    rec = parser.parse_args(["recorder", "--port", "0", "--s3-endpoint", "http://h:1", "--s3-bucket", "b"])
    assert rec.s3_endpoint == "http://h:1" and rec.spool_dir == Path(".rtvoice/spool")
