"""The one first-audio latency definition (rtvoice.core.latency) and the services that report it."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from rtvoice.core.latency import (
    LatencyClockError,
    first_audio_latency_from_monotonic,
    first_audio_latency_ms,
)

SERVICES = Path(__file__).resolve().parents[2] / "services" / "rtvoice"


def test_latency_is_first_agent_sample_minus_end_of_speech() -> None:
    assert first_audio_latency_ms(1200.0, 1650.5) == pytest.approx(450.5)
    assert first_audio_latency_ms(300.0, 300.0) == 0.0


def test_monotonic_seconds_give_the_same_ms() -> None:
    assert first_audio_latency_from_monotonic(10.25, 10.75) == pytest.approx(500.0)
    assert first_audio_latency_from_monotonic(1.2, 1.6505) == pytest.approx(
        first_audio_latency_ms(1200, 1650.5)
    )


@pytest.mark.parametrize(
    ("end", "first"), [(math.nan, 10.0), (10.0, math.inf), (500.0, 499.9), (-math.inf, 0.0)]
)
def test_unusable_instants_raise_a_typed_error(end: float, first: float) -> None:
    with pytest.raises(LatencyClockError) as info:
        first_audio_latency_ms(end, first)
    assert isinstance(info.value, ValueError)


def _reporters() -> dict[str, set[str]]:
    """Modules that call a latency function of rtvoice.core.latency, by function name."""
    found: dict[str, set[str]] = {}
    for path in SERVICES.rglob("*.py"):
        if path.name == "latency.py" and path.parent.name == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in ("first_audio_latency_ms", "first_audio_latency_from_monotonic"):
                    found.setdefault(str(path.relative_to(SERVICES)), set()).add(node.func.id)
    return found


def test_ingress_recorder_and_caller_use_the_one_definition() -> None:
    reporters = _reporters()
    for module in ("ingress/relay.py", "recorder/turns.py", "caller/client.py", "core/metrics.py"):
        assert module in reporters, f"{module} does not compute first-audio latency with rtvoice.core.latency"
