"""WebSocket transport of the OpenAI Realtime adapter: open, handshake, typed failures.

One text frame = one JSON event (docs/providers.md, "OpenAI Realtime"). ``websockets`` with
``compression=None`` (base64 audio does not compress; permessage-deflate only costs CPU and tail
latency) and the
``Authorization: Bearer`` header; the beta shape adds ``OpenAI-Beta: realtime=v1``. The API key is only
ever put in that header, never in a URL or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from rtvoice.bridge.providers.openai.protocol import BETA_HEADER, DEFAULT_BASE_URL, Shape, classify_error
from rtvoice.core.errors import (
    RealtimeAuthError,
    RealtimeError,
    RealtimeProtocolError,
    RealtimeProviderError,
    RealtimeReadTimeout,
)

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def realtime_url(base_url: str | None, model: str) -> str:
    """``base_url`` (default ``wss://api.openai.com/v1/realtime``) with ``?model=`` added when missing.

    ``http(s)://`` is turned into ``ws(s)://``.
    """
    parts = urlsplit(base_url or DEFAULT_BASE_URL)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = dict(parse_qsl(parts.query))
    if "model" not in query and "call_id" not in query and model:
        query["model"] = model
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))


async def open_socket(url: str, api_key: str | None, shape: Shape, timeout_s: float) -> ClientConnection:
    """Open the provider WebSocket.

    Raises ``RealtimeAuthError`` (HTTP 401/403 on the upgrade) or ``RealtimeProviderError`` (unreachable,
    other HTTP status; ``retryable`` for network trouble and 5xx).
    """
    headers: list[tuple[str, str]] = []
    if api_key:
        headers.append(("Authorization", f"Bearer {api_key}"))
    if shape == "beta":
        headers.append(BETA_HEADER)
    try:
        return await websockets.connect(
            url,
            additional_headers=headers,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            open_timeout=timeout_s,
            ping_interval=20,
            ping_timeout=30,
        )
    except InvalidStatus as err:
        status = err.response.status_code
        if status in (401, 403):
            raise RealtimeAuthError(
                f"provider refused the credentials (HTTP {status})", code="invalid_api_key", fatal=True
            ) from None
        raise RealtimeProviderError(
            f"provider refused the connection (HTTP {status})",
            code=f"http_{status}",
            retryable=status >= 500 or status == 429,
        ) from None
    except InvalidURI as err:
        raise RealtimeProviderError(f"bad provider URL: {err}", code="bad_url") from None
    except (OSError, InvalidHandshake, TimeoutError) as err:
        raise RealtimeProviderError(
            f"cannot reach the provider at {urlsplit(url).netloc}: {type(err).__name__}: {err}",
            code="provider_unreachable",
            retryable=True,
        ) from None


def parse_event(raw: str | bytes) -> dict[str, Any]:
    """One server event. Raises ``RealtimeProtocolError`` for a binary frame, bad JSON or no ``type``."""
    if isinstance(raw, bytes):
        raise RealtimeProtocolError("provider sent a binary frame; OpenAI Realtime uses JSON text frames")
    try:
        evt = json.loads(raw)
    except ValueError:
        raise RealtimeProtocolError("provider sent a frame that is not JSON", code="bad_json") from None
    if not isinstance(evt, dict) or not isinstance(evt.get("type"), str):
        raise RealtimeProtocolError("provider event without a string 'type'", code="bad_event")
    return evt


async def recv_event(ws: ClientConnection, timeout_s: float) -> dict[str, Any]:
    """The next server event within ``timeout_s``.

    Raises ``RealtimeReadTimeout``, ``RealtimeProtocolError`` or a typed error for a close during the
    handshake (auth/quota codes are fatal; others retryable ``RealtimeProviderError``).
    """
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout_s)
    except TimeoutError:
        raise RealtimeReadTimeout(
            f"provider sent nothing for {timeout_s:g} s", code="provider_timeout"
        ) from None
    except ConnectionClosed as err:
        raise close_error(err) from None
    return parse_event(raw)


def close_error(err: ConnectionClosed) -> RealtimeError:
    """The typed error for a close during setup: ``<type>.<code>`` reasons are classified."""
    code = err.rcvd.code if err.rcvd else None
    reason = err.rcvd.reason if err.rcvd else ""
    if code is not None and code >= 3000 and "." in reason:
        etype, _, ecode = reason.partition(".")
        typed = classify_error({"type": etype, "code": ecode, "message": reason})
        if typed is not None:
            return typed
    return RealtimeProviderError(
        f"provider closed the connection during setup (code {code}{': ' + reason if reason else ''})",
        code="provider_closed",
        retryable=True,
    )


async def handshake(ws: ClientConnection, update_text: str, timeout_s: float) -> dict[str, Any]:
    """Wait for ``session.created``, send the first ``session.update``, wait for ``session.updated``.

    Returns the effective session. An ``error`` event raises its typed error (``RealtimeAuthError`` for
    ``invalid_api_key``; ``RealtimeProtocolError`` for a rejected update such as ``unknown_parameter``).
    """
    created = False
    while True:
        evt = await recv_event(ws, timeout_s)
        etype = evt["type"]
        if etype == "error":
            typed = classify_error(evt.get("error") or {})
            if typed is None:
                continue
            if not typed.fatal and isinstance(typed, RealtimeProtocolError):
                typed.fatal = True
                typed.message = f"provider rejected the session configuration: {typed.message}"
            raise typed
        if etype == "session.created" and not created:
            created = True
            await ws.send(update_text)
        elif etype == "session.updated" and created:
            session: dict[str, Any] = evt.get("session") or {}
            return session
        else:
            log.debug("ignoring %s during handshake", etype)
