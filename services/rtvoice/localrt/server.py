"""The offline engine's WebSocket server: OpenAI Realtime GA protocol at ``/v1/realtime?model=...``.

``websockets`` asyncio server with ``compression=None`` (base64 audio does not compress).
Auth (when an API key is configured) behaves like OpenAI's: the upgrade succeeds, a wrong or missing
``Authorization: Bearer`` key gets ``error`` ``invalid_api_key`` and close code 3000 with reason
``invalid_request_error.invalid_api_key``. Browsers may pass the key as the subprotocol
``openai-insecure-api-key.<key>`` next to ``realtime``. Sessions end after ``max_session_s`` with
``error`` ``session_expired`` and close code 1001. ASR and TTS run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from rtvoice.core.metrics import service_metrics
from rtvoice.localrt import events as ev
from rtvoice.localrt.asr import Recognizer
from rtvoice.localrt.options import EngineOptions
from rtvoice.localrt.recognition import SpeechRecognizer, get_speech_recognizer, make_detector
from rtvoice.localrt.session import RealtimeSession
from rtvoice.localrt.stt_http import HttpRecognizer
from rtvoice.localrt.tts import get_synthesizer

log = logging.getLogger(__name__)
METRICS = service_metrics("localrt")

PATH = "/v1/realtime"
MAX_FRAME_BYTES = 32 * 1024 * 1024  # one append may carry 15 MiB of audio, ~20 MiB as base64
_KEY_SUBPROTOCOL = "openai-insecure-api-key."


def _select_subprotocol(_conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    return Subprotocol("realtime") if "realtime" in offered else None


def _process_request(conn: ServerConnection, request: Request) -> Response | None:
    if urlsplit(request.path).path.rstrip("/") != PATH:
        return conn.respond(HTTPStatus.NOT_FOUND, f"Not found: the realtime endpoint is {PATH}?model=...\n")
    return None


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        if proto.strip().startswith(_KEY_SUBPROTOCOL):
            return proto.strip()[len(_KEY_SUBPROTOCOL) :]
    return None


class LocalRealtimeServer:
    """The engine as an asyncio server (use ``async with`` or :meth:`start` / :meth:`stop`).

    ``host`` / ``port`` (0 = ephemeral). After start, :attr:`port` is the bound port and :attr:`url` is
    ``ws://host:port/v1/realtime``. Start raises ``OSError`` if the port is taken.
    """

    def __init__(self, options: EngineOptions | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.options = options or EngineOptions()
        self.host = host
        self.port = port
        self.responder = self.options.make_responder()
        self.speech = self.options.make_speech()
        self.recognizer: SpeechRecognizer
        if self.options.stt != "http":
            self.recognizer = get_speech_recognizer(self.options.stt, self.options.phrases)
        else:
            assert self.options.stt_url is not None
            self.recognizer = HttpRecognizer(
                self.options.stt_url, self.options.stt_model, self.options.stt_api_key
            )
        self._server: Server | None = None
        self.sessions: set[RealtimeSession] = set()

    @property
    def url(self) -> str:
        """``ws://host:port/v1/realtime`` (append ``?model=...``)."""
        return f"ws://{self.host}:{self.port}{PATH}"

    async def start(self) -> None:
        """Load the models (decoder, grammar, voice, answer model: ~0.5–5 s, in a thread), then listen.

        Raises ``UnsupportedVoiceError`` for an unknown default voice, ``ResponderError`` when the
        bundled answer model is selected but not installed, ``OSError`` when the port is taken.
        """
        self.speech.check_voice(self.options.voice)
        await asyncio.to_thread(self._prewarm)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            process_request=_process_request,
            select_subprotocol=_select_subprotocol,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info("local realtime engine listening on %s", self.url)

    def _prewarm(self) -> None:
        self.recognizer.prewarm()
        make_detector(self.options.vad, 0.5, 300, 500, 0)  # loads the silero model once, off the loop
        if isinstance(self.recognizer, Recognizer):
            self.recognizer.search_for(self.options.phrases)
        get_synthesizer()
        self.speech.prewarm(self.options.voice)
        prewarm = getattr(self.responder, "prewarm", None)
        if prewarm is not None:
            prewarm()

    async def stop(self) -> None:
        """Close every connection (1001 going away) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.responder.aclose()
        self.speech.close()
        if isinstance(self.recognizer, HttpRecognizer):
            await self.recognizer.aclose()

    async def __aenter__(self) -> LocalRealtimeServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _refuse(self, ws: ServerConnection, code: str, message: str, close_code: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(ev.error(code, message)))
            await ws.close(close_code, f"invalid_request_error.{code}")

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        if request.headers.get("OpenAI-Beta", "").strip().lower() == "realtime=v1":
            msg = "The beta realtime API shape is disabled; remove the OpenAI-Beta header (GA protocol)."
            await self._refuse(ws, "beta_api_shape_disabled", msg, 4000)
            return
        if self.options.api_key is not None:
            key = _presented_key(request)
            if key is None:
                await self._refuse(
                    ws, "invalid_api_key", "Missing bearer or basic authentication in header", 3000
                )
                return
            if not hmac.compare_digest(key.encode(), self.options.api_key.encode()):  # constant time
                await self._refuse(ws, "invalid_api_key", "Incorrect API key provided.", 3000)
                return
        model = (parse_qs(urlsplit(request.path).query).get("model") or [self.options.default_model])[0]
        session = RealtimeSession(self.options, self.responder, self.recognizer, model, self.speech)
        self.sessions.add(session)
        METRICS.session_started()
        writer = asyncio.create_task(self._write(ws, session))
        expired = False
        try:
            async with asyncio.timeout(self.options.max_session_s):
                async for message in ws:
                    METRICS.frames_in.inc()
                    await session.handle(message)
        except TimeoutError:
            expired = True
        except ConnectionClosed:
            pass
        finally:
            await session.close()
            self.sessions.discard(session)
            METRICS.session_ended("max_duration" if expired else "caller_hangup")
        if expired:
            minutes = self.options.max_session_s / 60
            session.emit(
                ev.error("session_expired", f"Your session hit the maximum duration of {minutes:g} minutes.")
            )
        session.outbox.put_nowait("")  # writer: drain, then stop
        with contextlib.suppress(ConnectionClosed):
            await writer
            if expired:
                await ws.close(1001, "session_expired")

    @staticmethod
    async def _write(ws: ServerConnection, session: RealtimeSession) -> None:
        while True:
            message = await session.outbox.get()
            if not message:
                return
            await ws.send(message)
            METRICS.frames_out.inc()
