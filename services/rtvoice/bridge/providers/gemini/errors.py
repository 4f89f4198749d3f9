"""Gemini Live close codes and reasons → typed failures (docs/providers.md, "Gemini Live", "Errors").

Gemini reports every error by closing the WebSocket with a code and a reason text; there is no error
event. :func:`classify_close` decides whether the session may continue on a new connection (resume
with the newest handle) or must end with a typed :class:`~rtvoice.core.errors.RealtimeError`.

=====================  ===========================================  ==========================================
close                  reason                                       outcome
=====================  ===========================================  ==========================================
1007                   "API key not valid…"                         ``RealtimeAuthError`` (session ends)
1007                   other ("Request contains an invalid…")       ``invalid_argument``, not retryable
1008                   "models/X is not found…"                     ``model_not_found``, not retryable
1008                   other ("Operation is not implemented…")      ``not_supported``, not retryable
1011                   RESOURCE_EXHAUSTED / quota                   ``quota_exceeded``, session ends
1011                   internal error / "Deadline expired…"         reconnect with the resumption handle
1000, 1001, 1006, …    any close the client did not ask for         reconnect with the resumption handle
=====================  ===========================================  ==========================================

All non-auth failures are ``RealtimeProviderError`` with the code shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtvoice.core.errors import RealtimeAuthError, RealtimeError, RealtimeProviderError

_MAX_REASON_CHARS = 300


@dataclass(frozen=True, slots=True)
class CloseOutcome:
    """What a server close means: ``reconnect`` the session, or end it with ``error``."""

    reconnect: bool
    error: RealtimeError


def _describe(code: int | None, reason: str) -> str:
    shown = reason[:_MAX_REASON_CHARS] or "no reason given"
    return f"Gemini Live closed the connection ({code if code is not None else 'no close frame'}): {shown}"


def classify_close(code: int | None, reason: str) -> CloseOutcome:
    """Map a close ``code`` (``None`` = connection dropped without a close frame) and ``reason``.

    The returned ``error`` is fatal when ``reconnect`` is false; when ``reconnect`` is true it is the
    error to report if reconnecting fails (retryable ``connection_lost``).
    """
    text = _describe(code, reason)
    low = reason.lower()
    if code == 1007 and "api key" in low:
        return CloseOutcome(False, RealtimeAuthError(text, fatal=True))
    if code == 1007:
        return CloseOutcome(False, RealtimeProviderError(text, code="invalid_argument", fatal=True))
    if code == 1008:
        is_model = "not found" in low or "not supported for bidigeneratecontent" in low
        return CloseOutcome(
            False,
            RealtimeProviderError(text, code="model_not_found" if is_model else "not_supported", fatal=True),
        )
    if code == 1011 and ("resource_exhausted" in low or "quota" in low or "rate limit" in low):
        return CloseOutcome(False, RealtimeProviderError(text, code="quota_exceeded", fatal=True))
    return CloseOutcome(True, RealtimeProviderError(text, code="connection_lost", retryable=True, fatal=True))


def handshake_error(status: int, body: str) -> RealtimeError:
    """A refused WebSocket upgrade (HTTP ``status``) as a typed, fatal error.

    401/403 → ``RealtimeAuthError``; 404 → ``model_not_found``-style ``not_found``; 429 and 5xx →
    retryable ``RealtimeProviderError``; anything else → not retryable.
    """
    text = f"Gemini Live refused the connection (HTTP {status}): {body[:_MAX_REASON_CHARS]}".rstrip(": ")
    if status in (401, 403):
        return RealtimeAuthError(text, fatal=True)
    if status == 404:
        return RealtimeProviderError(text, code="not_found", fatal=True)
    retryable = status == 429 or status >= 500
    return RealtimeProviderError(text, code=f"http_{status}", retryable=retryable, fatal=True)
