"""`rtvoice sessions report --plot` where matplotlib is not installed (as in the service image):
the report is printed, then a typed refusal that says what to install, exit 3."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from rtvoice.recorder.sessions_cmd import (
    EXIT_PLOT_UNAVAILABLE,
    PlotUnavailableError,
    sessions_report,
    write_histogram,
)
from tests.support.recorder import conversation, running_recorder, send_session


def _without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import matplotlib...` raise ImportError, as when not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_write_histogram_raises_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _without_matplotlib(monkeypatch)
    with pytest.raises(PlotUnavailableError, match=r"pip install 'rtvoice\[plot\]'"):
        write_histogram({"first_audio_ms": [1.0], "turn_complete_ms": [2.0]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


async def test_report_still_prints_and_exits_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as server:
        acks = await send_session(server.port, conversation("conv-plot").frames)
        assert acks[-1].finalized
    from rtvoice.recorder.archive_source import LocalArchive

    _without_matplotlib(monkeypatch)
    out = io.StringIO()
    rc = sessions_report(LocalArchive(tmp_path / "archive"), out, plot=tmp_path / "latency.png")
    assert rc == EXIT_PLOT_UNAVAILABLE == 3
    text = out.getvalue()
    assert "first_audio_ms" in text and "P50" in text  # the report itself is not lost
    assert "no histogram: --plot needs matplotlib" in text and "rtvoice[plot]" in text
    assert not (tmp_path / "latency.png").exists()
