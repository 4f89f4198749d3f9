"""The ingress's part of a call's trace: it mints the trace and makes its own spans.

Each caller session gets a new W3C trace context (:class:`~rtvoice.core.trace_context.TraceContext`):
its ``traceparent`` goes to the bridge in ``SessionStart.traceparent`` and its trace id to the caller in
``session.started.trace_id``. The parent id of that ``traceparent`` is the span id of the ingress's root
span ``ingress.session`` (WebSocket accepted → session over), so the bridge's ``session`` span is its
child. ``ingress.connect`` (placing the session on a bridge until it is ready) is a child of it too.
Spans have the shape of :class:`rtvoice.core.spans.Span`; times are Unix epoch ns.

The ingress has no link to the recorder: it sends each finished span to the bridge on the session's own
stream (``ClientFrame.span``), which records it with its own. ``ingress.connect`` goes right after
``ready``; ``ingress.session`` just before the ``EndFrame`` when the ingress ends the session. When the
bridge ends it, the bridge has closed the recording already: ``ingress.session`` is then not archived
and the bridge's ``session`` span names a parent that is not in ``spans.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rtvoice.core.spans import SessionTracer, Span
from rtvoice.core.trace_context import TraceContext


class IngressTrace:
    """The trace of one caller session ``session_id`` (see the module docstring)."""

    def __init__(self, session_id: str, context: TraceContext | None = None) -> None:
        self.context = context or TraceContext.mint()
        self._tracer = SessionTracer(session_id, self.context.trace_id)
        self._tracer.root_span_id = self.context.parent_id

    @property
    def trace_id(self) -> str:
        """32 lowercase hex digits, shared by every service's spans of the session."""
        return self.context.trace_id

    @property
    def traceparent(self) -> str:
        """``SessionStart.traceparent``: this trace, parented on the ``ingress.session`` span."""
        return self.context.traceparent

    @property
    def root_span_id(self) -> str:
        """The span id of ``ingress.session`` (the parent id in :attr:`traceparent`)."""
        return self.context.parent_id

    @property
    def started_unix_ns(self) -> int:
        """When the session's trace started (the ``ingress.session`` start), Unix epoch ns."""
        return self._tracer.started_unix_ns

    def connect_span(self, start_unix_ns: int, end_unix_ns: int, **attributes: Any) -> Span:
        """``ingress.connect``: placing the session on a bridge, from the first attempt to ``ready`` (or
        the refusal); attributes e.g. ``bridge`` (address), ``ok``."""
        return self._tracer.span("ingress.connect", start_unix_ns, end_unix_ns, **attributes)

    def session_span(self, end_unix_ns: int, **attributes: Any) -> Span:
        """``ingress.session``, the root span: from the accepted WebSocket to ``end_unix_ns``, with
        ``session_id`` and ``attributes`` (e.g. ``agent``, ``end_reason``)."""
        return dataclasses.replace(self._tracer.root(end_unix_ns, **attributes), name="ingress.session")
