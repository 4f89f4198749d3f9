"""Spans of one bridge session, sent to the recorder sink (never blocking the voice loop).

A zero-length span per meaningful caller frame or provider event (audio frames are summarized by the
``response`` span instead: 50 spans a second would say nothing), ``provider.connect``, ``response``
(with ``first_audio_ms``), ``tool.call``, ``barge_in``, ``error`` and, last, the ``session`` root span.
"""

from __future__ import annotations

import logging
from typing import Any

from rtvoice.bridge.outbox import RecorderSink
from rtvoice.core.errors import ERROR_KIND_NAMES
from rtvoice.core.spans import SessionTracer, Span, now_ns
from rtvoice.v1 import frames_pb2 as pb

#: Frame kinds whose spans are made elsewhere (response, error, barge_in, tool.call) or not at all.
_SPANNED_ELSEWHERE = frozenset({"audio", "playback_mark", "response_done", "error", "end"})

log = logging.getLogger("rtvoice.bridge.telemetry")


class SessionSpans:
    """Span bookkeeping of one session: open responses and tool calls by id."""

    def __init__(self, tracer: SessionTracer, recorder: RecorderSink) -> None:
        self.tracer = tracer
        self._recorder = recorder
        self._response_t0: dict[str, int] = {}
        self._tool_t0: dict[str, int] = {}

    def error(self, frame: pb.ErrorFrame) -> None:
        self._recorder.record_span(
            self.tracer.event(
                "error",
                kind=ERROR_KIND_NAMES.get(frame.kind, "unspecified"),
                code=frame.code,
                message=frame.message,
                retryable=frame.retryable,
                fatal=frame.fatal,
            )
        )

    def event(self, source: str, kind: str | None, frame: Any) -> None:
        """``<source>.<kind>`` with the frame's scalar fields as attributes."""
        if kind is None or kind in _SPANNED_ELSEWHERE:
            return
        body = getattr(frame, kind)
        attrs: dict[str, Any] = {}
        for field, value in body.ListFields():
            if field.type == field.TYPE_MESSAGE:
                continue
            if field.name == "text" and kind == "transcript" and not body.final:
                return  # deltas are summarized by the final transcript
            attrs[field.name] = value if isinstance(value, bool | int | float) else str(value)
        self._recorder.record_span(self.tracer.event(f"{source}.{kind}", **attrs))

    def span(self, name: str, t0_ns: int, /, **attrs: Any) -> None:
        """A span from ``t0_ns`` (Unix ns) to now."""
        self._recorder.record_span(self.tracer.span(name, t0_ns, now_ns(), **attrs))

    def instant(self, name: str, /, **attrs: Any) -> None:
        self._recorder.record_span(self.tracer.event(name, **attrs))

    def response_started(self, response_id: str) -> None:
        self._response_t0[response_id] = now_ns()

    def response_done(self, done: pb.ResponseDone, first_audio_ms: float | None) -> None:
        """The ``response`` span; ``first_audio_ms``: the first-audio latency of
        ``rtvoice.core.latency`` (end of the caller's turn → first agent sample played, session clock)."""
        t0 = self._response_t0.pop(done.response_id, None)
        if t0 is not None:
            self.span(
                "response",
                t0,
                response_id=done.response_id,
                status=done.status,
                status_reason=done.status_reason,
                output_tokens=done.usage.output_tokens,
                input_tokens=done.usage.input_tokens,
                first_audio_ms=first_audio_ms,
            )

    def tool_started(self, call_id: str) -> None:
        self._tool_t0[call_id] = now_ns()

    def tool_done(self, call_id: str, name: str, **attrs: Any) -> None:
        t0 = self._tool_t0.pop(call_id, None)
        if t0 is not None:
            self.span("tool.call", t0, call_id=call_id, tool=name, **attrs)

    def relayed(self, span: pb.Span) -> bool:
        """Record a span the ingress finished (``ClientFrame.span``) with the session's own; a span of
        another trace is dropped with a warning. True when recorded."""
        if span.trace_id != self.tracer.trace_id:
            log.warning(
                "session %s: dropped span %r of trace %s (the session's trace is %s)",
                self.tracer.session_id,
                span.name,
                span.trace_id or "-",
                self.tracer.trace_id,
            )
            return False
        self._recorder.record_span(Span.from_proto(span))
        return True

    def root(self, **attrs: Any) -> None:
        self._recorder.record_span(self.tracer.root(now_ns(), **attrs))
