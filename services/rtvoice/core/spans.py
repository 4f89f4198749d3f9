"""Spans: OpenTelemetry-shaped timing records of frames and provider events.

A session has one trace id (32 lowercase hex chars); every span has a span id (16 hex chars) and,
except the session's root span, a parent. Spans travel bridge → recorder inside ``RecordFrame.span``
(the ingress's reach the bridge first, in ``ClientFrame.span``) and end up in ``spans.json`` of the
archive and, when configured, MongoDB ``workflow_spans``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from rtvoice.v1 import frames_pb2 as pb


def new_trace_id() -> str:
    """32 lowercase hex characters (128 bits), as OpenTelemetry trace ids."""
    return secrets.token_hex(16)


def new_span_id() -> str:
    """16 lowercase hex characters (64 bits), as OpenTelemetry span ids."""
    return secrets.token_hex(8)


def now_ns() -> int:
    """Wall clock, Unix epoch nanoseconds."""
    return time.time_ns()


@dataclass(slots=True)
class Span:
    """One timed operation. Times are Unix epoch ns; attribute values are JSON scalars."""

    trace_id: str
    name: str
    start_unix_ns: int
    end_unix_ns: int
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_proto(self) -> pb.Span:
        return pb.Span(
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_span_id=self.parent_span_id,
            name=self.name,
            start_unix_ns=self.start_unix_ns,
            end_unix_ns=self.end_unix_ns,
            attributes={k: json.dumps(v) for k, v in self.attributes.items()},
        )

    @classmethod
    def from_proto(cls, msg: pb.Span) -> Span:
        attrs: dict[str, Any] = {}
        for k, v in msg.attributes.items():
            try:
                attrs[k] = json.loads(v)
            except ValueError:
                attrs[k] = v
        return cls(
            trace_id=msg.trace_id,
            span_id=msg.span_id,
            parent_span_id=msg.parent_span_id,
            name=msg.name,
            start_unix_ns=msg.start_unix_ns,
            end_unix_ns=msg.end_unix_ns,
            attributes=attrs,
        )

    def to_dict(self, session_id: str) -> dict[str, Any]:
        """The document stored in ``spans.json`` and MongoDB ``workflow_spans``."""
        return {
            "session_id": session_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id or None,
            "name": self.name,
            "start_unix_ns": self.start_unix_ns,
            "end_unix_ns": self.end_unix_ns,
            "duration_ms": (self.end_unix_ns - self.start_unix_ns) / 1e6,
            "attributes": self.attributes,
        }


class SessionTracer:
    """Makes spans of one session: a root span id and a trace id shared by all spans. ``parent_span_id``
    is the parent of the root span (the span of the service that started this one, from its
    ``traceparent``; empty: the root span is the trace's root)."""

    def __init__(self, session_id: str, trace_id: str | None = None, parent_span_id: str = "") -> None:
        self.session_id = session_id
        self.trace_id = trace_id or new_trace_id()
        self.parent_span_id = parent_span_id
        self.root_span_id = new_span_id()
        self.started_unix_ns = now_ns()

    def span(
        self,
        name: str,
        start_unix_ns: int,
        end_unix_ns: int | None = None,
        parent_span_id: str | None = None,
        /,
        **attributes: Any,
    ) -> Span:
        return Span(
            trace_id=self.trace_id,
            name=name,
            start_unix_ns=start_unix_ns,
            end_unix_ns=end_unix_ns if end_unix_ns is not None else start_unix_ns,
            parent_span_id=self.root_span_id if parent_span_id is None else parent_span_id,
            attributes=attributes,
        )

    def event(self, name: str, /, **attributes: Any) -> Span:
        """A zero-length span at now (a frame or provider event)."""
        t = now_ns()
        return self.span(name, t, t, **attributes)

    def root(self, end_unix_ns: int, /, **attributes: Any) -> Span:
        """The session's root span, from session start to ``end_unix_ns``."""
        return Span(
            trace_id=self.trace_id,
            name="session",
            start_unix_ns=self.started_unix_ns,
            end_unix_ns=end_unix_ns,
            span_id=self.root_span_id,
            parent_span_id=self.parent_span_id,
            attributes={"session_id": self.session_id, **attributes},
        )
