"""W3C Trace Context ``traceparent`` values: how one call's trace id travels ingress → bridge → recorder.

``traceparent`` is ``{version}-{trace-id}-{parent-id}-{flags}``: 2, 32, 16 and 2 lowercase hex digits,
version ``00`` (see the W3C Trace Context recommendation, section "traceparent Header"). The ingress
mints one per session (:meth:`TraceContext.mint`): the trace id every service's spans of the session
share and, as parent id, the span id of the ingress's own ``ingress.session`` span. It travels in
``SessionStart.traceparent``; the bridge reads it with :func:`parse_traceparent` and parents its
``session`` span on it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from rtvoice.core.spans import SessionTracer, new_span_id, new_trace_id

log = logging.getLogger("rtvoice.trace")

_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})"
    r"(?P<rest>-.*)?"
)
_SAMPLED = "01"


class TraceContextError(ValueError):
    """A ``traceparent`` value that is not W3C Trace Context (the message says which part)."""


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One hop of a trace: ``trace_id`` (32 hex), ``parent_id`` (16 hex: the span id of the sender's
    span) and ``flags`` (2 hex; ``01`` = sampled)."""

    trace_id: str
    parent_id: str
    flags: str = _SAMPLED

    @classmethod
    def mint(cls) -> TraceContext:
        """A new trace: random trace id and parent span id (never all zeros), sampled."""
        return cls(new_trace_id(), new_span_id())

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` value, version ``00``."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


def parse_traceparent(value: str) -> TraceContext:
    """The context of a ``traceparent`` value (surrounding spaces ignored).

    Raises :class:`TraceContextError` when it is not ``vv-<32 hex>-<16 hex>-ff`` in lowercase hex, the
    version is ``ff``, version ``00`` has extra fields, or the trace id or parent id is all zeros (the
    recommendation's invalid values). Later versions may append ``-`` fields, which are ignored.
    """
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        raise TraceContextError(
            f"traceparent {value!r} is not <2 hex>-<32 hex>-<16 hex>-<2 hex> (lowercase hex digits)"
        )
    if m["version"] == "ff":
        raise TraceContextError("traceparent version ff is invalid")
    if m["version"] == "00" and m["rest"]:
        raise TraceContextError("traceparent version 00 has exactly four fields")
    if m["trace_id"] == "0" * 32:
        raise TraceContextError("traceparent trace id is all zeros")
    if m["parent_id"] == "0" * 16:
        raise TraceContextError("traceparent parent id is all zeros")
    return TraceContext(m["trace_id"], m["parent_id"], m["flags"])


def tracer_for(session_id: str, traceparent: str) -> SessionTracer:
    """The tracer of a session started with ``traceparent`` (``SessionStart.traceparent``): its trace id,
    its root span parented on the sender's span. Empty: a new trace. Invalid: a new trace and a warning
    (a session is never refused over telemetry)."""
    if not traceparent:
        return SessionTracer(session_id)
    try:
        ctx = parse_traceparent(traceparent)
    except TraceContextError as err:
        log.warning("session %s: %s; starting a new trace", session_id, err)
        return SessionTracer(session_id)
    return SessionTracer(session_id, ctx.trace_id, ctx.parent_id)


def trace_id_of(traceparent: str) -> str:
    """The trace id of a ``traceparent`` value; ``""`` when it is empty or invalid (for readers that only
    label their output with the trace, e.g. the recorder's manifest)."""
    try:
        return parse_traceparent(traceparent).trace_id if traceparent else ""
    except TraceContextError:
        return ""
