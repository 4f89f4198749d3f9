"""Spans: OpenTelemetry-shaped ids and the proto round trip; log redaction."""

from __future__ import annotations

import re

from rtvoice.core.service import redact
from rtvoice.core.spans import SessionTracer, Span


def test_ids_are_otel_shaped_and_parented_to_the_session() -> None:
    tracer = SessionTracer("s1")
    span = tracer.event("audio.in", bytes=640)
    assert re.fullmatch(r"[0-9a-f]{32}", tracer.trace_id)
    assert re.fullmatch(r"[0-9a-f]{16}", span.span_id)
    assert span.parent_span_id == tracer.root_span_id and span.trace_id == tracer.trace_id
    root = tracer.root(tracer.started_unix_ns + 5_000_000)
    assert root.span_id == tracer.root_span_id and root.parent_span_id == ""
    assert root.to_dict("s1")["duration_ms"] == 5.0


def test_proto_round_trip_keeps_typed_attributes() -> None:
    span = Span("a" * 32, "x", 1, 2, attributes={"n": 3, "ok": True, "s": "v", "f": 1.5})
    back = Span.from_proto(span.to_proto())
    assert back == span


def test_redact_masks_keys_and_tokens() -> None:
    line = "key sk-proj-abcdefghijklmnop Bearer abc.def token=rtv1.xyz.sig AIzaSyABCDEFGHIJK rtv1.aaa.bbb"
    out = redact(line)
    for secret in ("abcdefghijklmnop", "abc.def", "xyz.sig", "ABCDEFGHIJK", "aaa.bbb"):
        assert secret not in out
