"""W3C traceparent values: minting, parsing, refusing invalid ones, and the bridge's tracer from them."""

from __future__ import annotations

import logging

import pytest

from rtvoice.core.trace_context import (
    TraceContext,
    TraceContextError,
    parse_traceparent,
    trace_id_of,
    tracer_for,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parse_the_recommendation_example() -> None:
    ctx = parse_traceparent(VALID)
    assert (ctx.trace_id, ctx.parent_id, ctx.flags) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "01",
    )
    assert ctx.traceparent == VALID


def test_minted_contexts_round_trip_and_differ() -> None:
    a, b = TraceContext.mint(), TraceContext.mint()
    assert parse_traceparent(a.traceparent) == a
    assert a.trace_id != b.trace_id and a.parent_id != b.parent_id
    assert len(a.trace_id) == 32 and len(a.parent_id) == 16 and a.flags == "01"


def test_a_later_version_may_add_fields() -> None:
    assert parse_traceparent("01-" + VALID[3:] + "-what-ever").trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        VALID + "-extra",  # version 00 has four fields
    ],
)
def test_invalid_values_raise(value: str) -> None:
    with pytest.raises(TraceContextError):
        parse_traceparent(value)


def test_the_bridge_tracer_follows_the_traceparent() -> None:
    tracer = tracer_for("s1", VALID)
    root = tracer.root(tracer.started_unix_ns + 1)
    assert root.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert root.parent_span_id == "00f067aa0ba902b7" and root.span_id != root.parent_span_id
    child = tracer.span("provider.connect", 1, 2)
    assert child.trace_id == root.trace_id and child.parent_span_id == root.span_id


def test_no_or_bad_traceparent_starts_a_new_trace(caplog: pytest.LogCaptureFixture) -> None:
    assert tracer_for("s2", "").root(1).parent_span_id == ""
    with caplog.at_level(logging.WARNING, "rtvoice.trace"):
        tracer = tracer_for("s3", "garbage")
    assert len(tracer.trace_id) == 32 and tracer.root(1).parent_span_id == ""
    assert "session s3" in caplog.text and "new trace" in caplog.text


def test_trace_id_of_labels_without_raising() -> None:
    assert trace_id_of(VALID) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of("") == "" and trace_id_of("00-zz") == ""
