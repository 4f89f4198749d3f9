"""Test helpers for the offline engine (``rtvoice.localrt``), usable by every area's tests.

- ``async with local_realtime(phrases=[...]) as url`` — the engine in-process on 127.0.0.1:0, yields
  ``ws://127.0.0.1:PORT/v1/realtime``; ``local_realtime_server(...)`` yields the server object instead.
- :class:`RealtimeTestClient` — a raw ``websockets`` client that validates every event it sends against
  the ``openai`` package's ``RealtimeClientEvent`` union and every event it receives against
  ``RealtimeServerEvent`` (and that the union picked the class of the event's own ``type``).
- ``async with chat_completions_server(...) as (url, requests)`` — a tiny OpenAI-compatible
  chat-completions HTTP server (stdlib ``http.server`` in a thread) for the chat responder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pydantic
import websockets
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from websockets.asyncio.client import ClientConnection

from rtvoice.core.audio import resample_once
from rtvoice.localrt.options import EngineOptions
from rtvoice.localrt.server import LocalRealtimeServer
from tests.support.speech import synthesize_pcm16

Event = dict[str, Any]
_SERVER_EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)
_CLIENT_EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeClientEvent)


def _validate(adapter: pydantic.TypeAdapter[Any], event: Event, side: str) -> None:
    try:
        model = adapter.validate_python(event)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"{side} event {event.get('type')!r} does not validate: {exc}") from exc
    if getattr(model, "type", None) != event.get("type"):
        raise AssertionError(f"{side} event {event.get('type')!r} validated as {type(model).__name__}")


def validate_server_event(event: Event) -> None:
    """Assert ``event`` is a valid ``openai.types.realtime.RealtimeServerEvent`` of its own ``type``."""
    _validate(_SERVER_EVENTS, event, "server")


def validate_client_event(event: Event) -> None:
    """Assert ``event`` is a valid ``openai.types.realtime.RealtimeClientEvent`` of its own ``type``."""
    _validate(_CLIENT_EVENTS, event, "client")


@contextlib.asynccontextmanager
async def local_realtime_server(
    phrases: Iterable[str] = (), options: EngineOptions | None = None, **option_fields: Any
) -> AsyncIterator[LocalRealtimeServer]:
    """The engine on 127.0.0.1, ephemeral port; ``phrases`` / ``option_fields`` build its EngineOptions."""
    opts = options or EngineOptions(phrases=tuple(phrases), **option_fields)
    async with LocalRealtimeServer(opts, "127.0.0.1", 0) as server:
        yield server


@contextlib.asynccontextmanager
async def local_realtime(
    phrases: Iterable[str] = (), options: EngineOptions | None = None, **option_fields: Any
) -> AsyncIterator[str]:
    """Like :func:`local_realtime_server` but yields the URL ``ws://127.0.0.1:PORT/v1/realtime``."""
    async with local_realtime_server(phrases, options, **option_fields) as server:
        yield server.url


def speech_pcm24k(text: str, lead_ms: int = 300, tail_ms: int = 900) -> bytes:
    """``text`` as PCM16 24 kHz with silence around it (what a GA ``audio/pcm`` client appends)."""
    pcm = np.frombuffer(synthesize_pcm16(text, 24000), dtype="<i2")
    lead, tail = np.zeros(24 * lead_ms, np.int16), np.zeros(24 * tail_ms, np.int16)
    return np.concatenate([lead, pcm, tail]).astype("<i2").tobytes()


def pcm16_to_16k(data: bytes, rate_hz: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    """PCM16 bytes at ``rate_hz`` → 16 kHz samples (for re-recognizing the engine's replies)."""
    return resample_once(np.frombuffer(data, dtype="<i2"), rate_hz, 16000)


class RealtimeTestClient:
    """Raw ``websockets`` client for the GA protocol; every event in both directions is validated."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[Event] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, model: str = "gpt-realtime", api_key: str | None = None
    ) -> AsyncIterator[RealtimeTestClient]:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        async with websockets.connect(
            f"{url}?model={model}", additional_headers=headers, compression=None, max_size=None
        ) as ws:
            yield cls(ws)

    async def send(self, event: Event) -> None:
        validate_client_event(event)
        await self.ws.send(json.dumps(event))

    async def recv(self, timeout_s: float = 20.0) -> Event:
        event: Event = json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))
        validate_server_event(event)
        self.events.append(event)
        return event

    async def wait_for(self, etype: str, timeout_s: float = 20.0) -> Event:
        """Receive until an event of type ``etype`` arrives (all are kept in :attr:`events`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {etype} within {timeout_s} s; got {[e['type'] for e in self.events]}")
            event = await self.recv(left)
            if event["type"] == etype:
                return event

    async def update_session(self, **session: Any) -> Event:
        await self.send({"type": "session.update", "session": {"type": "realtime", **session}})
        return await self.wait_for("session.updated")

    async def append_audio(self, data: bytes, chunk_bytes: int = 4800, pace_s: float = 0.0) -> None:
        """Append ``data`` in chunks (default 100 ms of 24 kHz PCM16); ``pace_s`` sleeps between chunks."""
        for i in range(0, len(data), chunk_bytes):
            chunk = base64.b64encode(data[i : i + chunk_bytes]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})
            if pace_s:
                await asyncio.sleep(pace_s)

    def of_type(self, etype: str) -> list[Event]:
        return [e for e in self.events if e["type"] == etype]

    def audio_bytes(self, response_id: str | None = None) -> bytes:
        """Concatenated ``response.output_audio.delta`` payloads received (of one response if given)."""
        return b"".join(
            base64.b64decode(e["delta"])
            for e in self.of_type("response.output_audio.delta")
            if response_id in (None, e["response_id"])
        )


ChatHandler = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def chat_reply(content: str) -> dict[str, Any]:
    """A chat-completions response body whose answer is ``content``."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "test-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@contextlib.asynccontextmanager
async def chat_completions_server(
    handler: ChatHandler, delay_s: float = 0.0
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real OpenAI-compatible ``POST /v1/chat/completions`` server on 127.0.0.1 (port 0, own thread).

    ``handler(request_json) -> (status, body)``; ``delay_s`` delays each answer. Yields the base URL
    ``http://127.0.0.1:PORT/v1`` and the list of received request bodies (with their ``_headers``).
    """
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            body["_headers"] = dict(self.headers)
            received.append(body)
            if self.path != "/v1/chat/completions":
                status, answer = 404, {"error": {"message": f"no route {self.path}"}}
            else:
                status, answer = handler(body)
            time.sleep(delay_s)
            payload = json.dumps(answer).encode()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up (cancel)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", received
    finally:
        httpd.shutdown()
        httpd.server_close()
