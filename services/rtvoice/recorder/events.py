"""A session's ``events.jsonl`` and ``spans.jsonl``: non-audio events, spans, and error spans.

Events are one JSON object per line (``t_ms`` on the session clock, ``type``, fields). Spans are
``Span.to_dict`` documents, also offered to the span sink (MongoDB) when one is configured. Spans the
recorder makes itself (``rtvoice.error``) need the session's trace id; until the bridge's first span
brings it, up to 100 wait in ``Bookkeeping.pending_spans`` (checkpointed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtvoice.core.errors import ERROR_KIND_NAMES
from rtvoice.core.spans import Span, new_trace_id
from rtvoice.recorder.spool import EVENTS, SPANS, JsonLog, SessionSpool
from rtvoice.v1 import frames_pb2 as pb

if TYPE_CHECKING:
    from rtvoice.recorder.session import Bookkeeping, Counts, SpanSink

_MAX_PENDING_SPANS = 100


class EventLogs:
    """The two JSON-lines logs of one session, reopened at their checkpointed sizes (bytes)."""

    def __init__(
        self,
        spool: SessionSpool,
        started_unix_ns: int,
        counts: Counts,
        book: Bookkeeping,
        sink: SpanSink | None,
        events_size: int,
        spans_size: int,
    ) -> None:
        self.session_id = spool.session_id
        self.started_unix_ns = started_unix_ns
        self.counts = counts
        self.book = book
        self.sink = sink
        self.events = JsonLog(spool.path(EVENTS), events_size)
        self.spans = JsonLog(spool.path(SPANS), spans_size)

    def event(self, t_us: int, type_: str, **fields: Any) -> None:
        """Append one event (raises ``OSError`` when the spool cannot be written)."""
        self.events.append({"t_ms": t_us / 1000, "type": type_, **fields})

    def error(self, t_us: int, err: pb.ErrorFrame, source: str) -> None:
        """Count an error frame, log it as an event, and make an ``rtvoice.error`` span of it."""
        self.counts.errors += 1
        fields: dict[str, Any] = {
            "kind": ERROR_KIND_NAMES.get(err.kind, "unspecified"),
            "code": err.code,
            "message": err.message,
            "retryable": err.retryable,
            "fatal": err.fatal,
        }
        self.event(t_us, "error", source=source, **fields)
        at_ns = self.started_unix_ns + t_us * 1000
        attrs = {f"error.{k}": v for k, v in fields.items()}
        attrs.update(source=source, session_ms=t_us / 1000)
        span: dict[str, Any] = {
            "name": "rtvoice.error",
            "start_unix_ns": at_ns,
            "end_unix_ns": at_ns,
            "attributes": attrs,
        }
        if self.book.trace_id:
            self.span(Span(trace_id=self.book.trace_id, **span))
        elif len(self.book.pending_spans) < _MAX_PENDING_SPANS:  # wait for the bridge's trace id
            self.book.pending_spans.append(span)
        else:
            self.flush_pending_spans(new_trace_id())
            self.span(Span(trace_id=self.book.trace_id, **span))

    def flush_pending_spans(self, trace_id: str) -> None:
        """Give the recorder's own spans the session's trace id (or ``trace_id`` when none is known)."""
        self.book.trace_id = self.book.trace_id or trace_id
        pending, self.book.pending_spans = self.book.pending_spans, []
        for span in pending:
            self.span(Span(trace_id=self.book.trace_id, **span))

    def span(self, span: Span) -> None:
        """Append one span document and offer it to the sink (a full sink is counted, not fatal)."""
        if not self.book.trace_id and span.trace_id:
            self.flush_pending_spans(span.trace_id)
        self.counts.spans += 1
        doc = span.to_dict(self.session_id)
        self.spans.append(doc)
        if self.sink is not None and not self.sink.offer(doc):
            self.counts.spans_dropped_sink += 1

    def close(self) -> None:
        """Close both files (idempotent)."""
        self.events.close()
        self.spans.close()
