"""The ingress's trace of a session: the traceparent it sends and the spans it makes."""

from __future__ import annotations

from rtvoice.core.trace_context import parse_traceparent, tracer_for
from rtvoice.ingress.tracing import IngressTrace


def test_traceparent_names_the_ingress_root_span() -> None:
    trace = IngressTrace("s1")
    ctx = parse_traceparent(trace.traceparent)
    assert ctx.trace_id == trace.trace_id and ctx.parent_id == trace.root_span_id


def test_spans_form_one_tree_with_the_bridge_session() -> None:
    trace = IngressTrace("s1")
    t0 = trace.started_unix_ns
    connect = trace.connect_span(t0 + 1_000, t0 + 2_000_000, bridge="127.0.0.1:1", ok=True)
    bridge_root = tracer_for("s1", trace.traceparent).root(t0 + 9_000_000)
    root = trace.session_span(t0 + 10_000_000, end_reason="caller_hangup")
    assert {connect.trace_id, bridge_root.trace_id, root.trace_id} == {trace.trace_id}
    assert root.span_id == trace.root_span_id and root.parent_span_id == ""
    assert connect.parent_span_id == root.span_id == bridge_root.parent_span_id
    assert connect.name == "ingress.connect" and connect.attributes == {"bridge": "127.0.0.1:1", "ok": True}
    assert root.name == "ingress.session" and root.start_unix_ns == t0
    assert root.to_dict("s1")["duration_ms"] == 10.0
    assert root.attributes == {"session_id": "s1", "end_reason": "caller_hangup"}


def test_every_session_gets_its_own_trace() -> None:
    assert IngressTrace("s1").trace_id != IngressTrace("s1").trace_id
