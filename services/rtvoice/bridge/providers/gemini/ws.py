"""One Gemini Live WebSocket connection: open it, send ``setup``, wait for ``setupComplete``
(see docs/providers.md, "Gemini Live").

:func:`open_connection` returns a connection ready for ``realtimeInput`` or raises a typed, fatal-marked
error: ``RealtimeAuthError`` / ``RealtimeProviderError`` from the close code or the refused upgrade,
``RealtimeProviderError`` ``unreachable`` (retryable) when nothing answers, ``RealtimeReadTimeout`` when no
``setupComplete`` comes. The API key travels only in the ``x-goog-api-key`` header, never in the URL or
in error messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from rtvoice.core.errors import RealtimeProviderError, RealtimeReadTimeout

from .codec import encode
from .errors import classify_close, handshake_error

CONNECT_TIMEOUT_S = 10.0
SETUP_TIMEOUT_S = 15.0
#: The server can take 8-30 s to answer a ping; only a minute without a pong counts as dead.
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 60.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: A reconnect waits for the old socket's closing handshake (resuming while it is open gets 1011).
CLOSE_TIMEOUT_S = 2.0


async def open_connection(
    url: str,
    api_key: str | None,
    setup: dict[str, Any],
    on_message: Callable[[str | bytes], bool],
    *,
    setup_timeout_s: float = SETUP_TIMEOUT_S,
) -> ClientConnection:
    """Connect to ``url``, send ``setup`` and feed every server frame to ``on_message`` until it returns
    ``True`` (it saw ``setupComplete``). Compression is off (PCM does not compress)."""
    headers = {"x-goog-api-key": api_key} if api_key else {}
    try:
        ws = await connect(
            url,
            additional_headers=headers,
            compression=None,
            open_timeout=CONNECT_TIMEOUT_S,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            max_size=MAX_MESSAGE_BYTES,
            close_timeout=CLOSE_TIMEOUT_S,
        )
    except InvalidStatus as err:
        body = err.response.body.decode("utf-8", "replace") if err.response.body else ""
        raise handshake_error(err.response.status_code, body) from None
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
        raise RealtimeProviderError(
            f"cannot reach Gemini Live at {url.split('?')[0]}: {err or type(err).__name__}",
            code="unreachable",
            retryable=True,
            fatal=True,
        ) from None
    try:
        await ws.send(encode(setup))
        async with asyncio.timeout(setup_timeout_s):
            while not on_message(await ws.recv()):
                pass
    except ConnectionClosed as err:
        code, reason = (err.rcvd.code, err.rcvd.reason) if err.rcvd else (None, "")
        raise classify_close(code, reason).error from None
    except TimeoutError:
        await ws.close()
        raise RealtimeReadTimeout(
            f"Gemini Live sent no setupComplete within {setup_timeout_s:.0f} s",
            code="setup_timeout",
            fatal=True,
        ) from None
    return ws


def received_close(ws: ClientConnection) -> tuple[int | None, str]:
    """The close code and reason the server sent (``(None, "")`` when the connection just dropped)."""
    rcvd = ws.protocol.close_rcvd
    return (rcvd.code, rcvd.reason) if rcvd else (None, "")
