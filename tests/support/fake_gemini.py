"""A protocol-faithful fake Gemini Live (BidiGenerateContent) server for tests.

The protocol it follows is described in docs/providers.md, "Gemini Live".

A mock of Google's service, which cannot be reached here. It behaves like the real one where tests can
observe it:

* server messages are JSON in **binary** frames, camelCase; client keys may be camelCase or snake_case;
* ``setup`` must come first, then ``setupComplete``; client messages that arrive before it are recorded
  as violations; errors are reported **only** as close frames (1007 bad key / invalid argument, 1008
  unknown model or unknown tool call id, 1011 internal / resume conflict / deadline);
* every message received and sent is validated against the ``google-genai`` live types
  (``fake_gemini_wire``); failures are collected in :attr:`FakeGeminiServer.violations`;
* automatic activity detection is an energy VAD on the caller's PCM16 in audio time (deterministic):
  speech confirmed after 30 ms voiced, turn end after ``silenceDurationMs`` of silence; manual mode
  uses ``activityStart``/``activityEnd``; speech during a response barges in: ``interrupted`` (+
  ``toolCallCancellation`` for pending calls) then ``turnComplete``;
* replies are real speech (espeak-ng via ``tests.support.speech``) at 24 kHz in ``inlineData`` chunks with
  ``outputTranscription`` words, ``generationComplete``, ``turnComplete`` + ``usageMetadata``;
* ``sessionResumptionUpdate`` handles (``resumable: false`` while generating) are honoured on
  reconnect; resuming a session whose socket is still open gets 1011; ``goAway`` then close 1011
  "Deadline expired…" at the deadline.

Script replies with :class:`FakeTurn` (one per caller turn, in order, shared across resumed connections).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.support.fake_gemini_wire import camelize, validate_client_message, validate_server_message
from tests.support.speech import synthesize_pcm16

WS_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
BAD_KEY = (1007, "API key not valid. Please pass a valid API key.")
INVALID_ARGUMENT = (1007, "Request contains an invalid argument.")
INTERNAL = (1011, "Internal error occurred.")
DEADLINE = (1011, "Deadline expired before operation could complete.")
QUOTA = (1011, "RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Live API sessions'.")
OUTPUT_RATE_HZ = 24000
VAD_FRAME_MS = 10
SPEECH_CONFIRM_MS = 30
VOICED_RMS = 300.0


@dataclass
class FakeToolCall:
    """A function call the model makes before speaking its reply (after the result arrives)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeTurn:
    """The model's answer to one caller turn.

    ``user_transcript``: what the fake "heard" (sent as ``inputTranscription``); ``go_away_ms``: send
    ``goAway`` with this time left when the response starts (then close 1011 at the deadline).
    """

    reply: str
    user_transcript: str = ""
    tool_call: FakeToolCall | None = None
    go_away_ms: int | None = None


@dataclass
class FakeSession:
    """A logical Gemini session; survives reconnects through resumption handles."""

    id: int
    script_pos: int = 0
    history: list[tuple[str, str]] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    conn: FakeConnection | None = None


@dataclass
class FakeConnection:
    """One WebSocket connection as the fake saw it (all counters in bytes of PCM)."""

    index: int
    ws: ServerConnection
    setup: dict[str, Any] = field(default_factory=dict)
    api_key: str = ""
    session: FakeSession | None = None
    resumed_handle: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes_in: int = 0
    audio_bytes_out: int = 0
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    setup_complete_sent: bool = False
    close_code: int | None = None
    close_reason: str = ""
    # VAD and response state
    in_speech: bool = False
    voiced_ms: int = 0
    silence_ms: int = 0
    turn_audio_ms: int = 0
    remainder: bytes = b""
    response: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    pending_calls: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    @property
    def client_content_count(self) -> int:
        return sum(1 for m in self.messages if "clientContent" in m)

    def aad(self) -> dict[str, Any]:
        ric = self.setup.get("realtimeInputConfig") or {}
        return dict(ric.get("automaticActivityDetection") or {})

    @property
    def manual(self) -> bool:
        return bool(self.aad().get("disabled"))

    @property
    def interrupts(self) -> bool:
        ric = self.setup.get("realtimeInputConfig") or {}
        return ric.get("activityHandling", "START_OF_ACTIVITY_INTERRUPTS") != "NO_INTERRUPTION"


class FakeGeminiServer:
    """``async with FakeGeminiServer([FakeTurn("hello")]) as fake:`` → ``fake.url`` on 127.0.0.1:0."""

    def __init__(
        self,
        script: list[FakeTurn] | None = None,
        *,
        api_keys: tuple[str, ...] = ("test-key",),
        models: tuple[str, ...] | None = None,
        realtime_factor: float = 8.0,
        chunk_ms: int = 40,
        default_reply: str = "okay",
        issue_handles: bool = True,
        voice_activity: bool = False,
        setup_delay_s: float = 0.0,
    ) -> None:
        self.script = list(script or [])
        self.api_keys = set(api_keys)
        self.models = models
        self.realtime_factor = realtime_factor
        self.chunk_ms = chunk_ms
        self.default_reply = default_reply
        self.issue_handles = issue_handles
        self.voice_activity = voice_activity
        self.setup_delay_s = setup_delay_s
        #: closes to answer the next setups with, in order (e.g. ``[QUOTA]``)
        self.close_next_setup: list[tuple[int, str]] = []
        self.connections: list[FakeConnection] = []
        self.sessions: list[FakeSession] = []
        self.violations: list[str] = []
        self._handles: dict[str, FakeSession] = {}
        self._server: Server | None = None
        self._call_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeGeminiServer:
        self._server = await serve(self._handler, "127.0.0.1", 0, compression=None, max_size=None)
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    @property
    def audio_bytes_in(self) -> int:
        return sum(c.audio_bytes_in for c in self.connections)

    @property
    def audio_bytes_out(self) -> int:
        return sum(c.audio_bytes_out for c in self.connections)

    # -- scripted faults ------------------------------------------------------------------------------
    def open_connections(self) -> list[FakeConnection]:
        return [c for c in self.connections if c.close_code is None and c.setup_complete_sent]

    async def go_away(self, time_left_ms: int, conn: FakeConnection | None = None) -> None:
        """Send ``goAway`` on ``conn`` (default: the newest open one); close 1011 at the deadline."""
        conn = conn or self.open_connections()[-1]
        await self._send(conn, {"goAway": {"timeLeft": f"{time_left_ms / 1000:g}s"}})
        self._spawn(self._deadline(conn, time_left_ms / 1000))

    async def drop(self, code: int, reason: str, conn: FakeConnection | None = None) -> None:
        """Close ``conn`` (default: the newest open one) with ``code``/``reason`` (an unexpected close)."""
        conn = conn or self.open_connections()[-1]
        await _close(conn.ws, code, reason)

    async def _deadline(self, conn: FakeConnection, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if conn.close_code is None:
            await _close(conn.ws, *DEADLINE)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connection ------------------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        conn = FakeConnection(index=len(self.connections), ws=ws)
        self.connections.append(conn)
        try:
            await self._serve(conn)
        except ConnectionClosed:
            pass
        finally:
            if conn.response is not None:
                conn.stop.set()
                conn.response.cancel()
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
            close = sent if sent is not None and not ws.protocol.close_rcvd_then_sent else rcvd
            conn.close_code = close.code if close else 1006
            conn.close_reason = close.reason if close else ""

    async def _serve(self, conn: FakeConnection) -> None:
        ws = conn.ws
        first = await self._receive(conn, await asyncio.wait_for(ws.recv(), 10))
        if first is None:
            return
        if "setup" not in first:
            await _close(ws, *INVALID_ARGUMENT)
            return
        conn.setup = first["setup"]
        conn.api_key = ws.request.headers.get("x-goog-api-key", "") if ws.request else ""
        if conn.api_key not in self.api_keys:
            await _close(ws, *BAD_KEY)
            return
        model = str(conn.setup.get("model", ""))
        if not model.startswith("models/") or (self.models is not None and model not in self.models):
            await _close(
                ws,
                1008,
                f"{model} is not found for API version v1beta, or is not supported for bidiGenerateContent. "
                "Call ListModels to see the list of available models and their supported methods.",
            )
            return
        if self.close_next_setup:
            await _close(ws, *self.close_next_setup.pop(0))
            return
        handle = (conn.setup.get("sessionResumption") or {}).get("handle")
        if handle:
            session = self._handles.get(handle)
            if session is None:
                await _close(ws, *INVALID_ARGUMENT)
                return
            if session.conn is not None:  # [observed] resuming while the old socket is open → 1011
                await _close(ws, *INTERNAL)
                return
            conn.resumed_handle = handle
        else:
            session = FakeSession(id=len(self.sessions) + 1)
            self.sessions.append(session)
        conn.session, session.conn = session, conn
        early: list[dict[str, Any]] = []
        if self.setup_delay_s:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.setup_delay_s):
                    while True:
                        msg = await self._receive(conn, await ws.recv())
                        if msg is not None:
                            self.violations.append(f"client sent {list(msg)} before setupComplete")
                            early.append(msg)
        await self._send(conn, {"setupComplete": {}})
        conn.setup_complete_sent = True
        await self._issue_handle(conn, resumable=True)
        for msg in early:
            await self._on_message(conn, msg)
        async for raw in ws:
            msg = await self._receive(conn, raw)
            if msg is not None:
                await self._on_message(conn, msg)

    async def _receive(self, conn: FakeConnection, raw: str | bytes) -> dict[str, Any] | None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        problem = validate_client_message(text)
        if problem is not None:
            self.violations.append(f"client message invalid: {problem}\n{text[:400]}")
            await _close(conn.ws, *INVALID_ARGUMENT)
            return None
        msg: dict[str, Any] = camelize(json.loads(text))
        conn.messages.append(msg)
        return msg

    async def _send(self, conn: FakeConnection, msg: dict[str, Any]) -> bool:
        text = json.dumps(msg, separators=(",", ":"))
        problem = validate_server_message(text)
        if problem is not None:
            self.violations.append(f"fake emitted an invalid server message: {problem}\n{text[:400]}")
        try:
            await conn.ws.send(text.encode())  # JSON in a binary frame, like the real service
        except ConnectionClosed:
            return False
        return True

    async def _issue_handle(self, conn: FakeConnection, *, resumable: bool) -> None:
        session = conn.session
        if session is None or not self.issue_handles or "sessionResumption" not in conn.setup:
            return
        if not resumable:
            await self._send(conn, {"sessionResumptionUpdate": {"newHandle": "", "resumable": False}})
            return
        handle = f"handle-{session.id}-{secrets.token_hex(6)}"
        session.handles.append(handle)
        self._handles[handle] = session
        await self._send(conn, {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    # -- client messages -------------------------------------------------------------------------------
    async def _on_message(self, conn: FakeConnection, msg: dict[str, Any]) -> None:
        if "setup" in msg:
            await _close(conn.ws, *INVALID_ARGUMENT)
        elif "realtimeInput" in msg:
            await self._realtime_input(conn, msg["realtimeInput"])
        elif "clientContent" in msg:
            content = msg["clientContent"]
            await self._barge_in(conn)  # clientContent interrupts generation
            texts = []
            for turn in content.get("turns") or []:
                text = "".join(p.get("text", "") for p in turn.get("parts") or [])
                if conn.session is not None:
                    conn.session.history.append((turn.get("role", "user"), text))
                texts.append(text)
            if content.get("turnComplete"):
                await self._start_turn(conn, typed=" ".join(texts))
        elif "toolResponse" in msg:
            for resp in msg["toolResponse"].get("functionResponses") or []:
                fut = conn.pending_calls.pop(str(resp.get("id")), None)
                if fut is None:
                    await _close(conn.ws, 1008, "Requested entity was not found.")
                    return
                conn.tool_responses.append(resp)
                if not fut.done():
                    fut.set_result(resp)

    async def _realtime_input(self, conn: FakeConnection, ri: dict[str, Any]) -> None:
        blobs = [ri["audio"]] if "audio" in ri else list(ri.get("mediaChunks") or [])
        for blob in blobs:
            pcm = base64.b64decode(blob.get("data", ""))
            conn.audio_bytes_in += len(pcm)
            if not conn.manual:
                await self._vad(conn, pcm, _rate(str(blob.get("mimeType", ""))))
        if "text" in ri:
            await self._barge_in(conn)
            await self._start_turn(conn, typed=str(ri["text"]))
        if "activityStart" in ri:
            await self._speech_started(conn)
        if "activityEnd" in ri:
            await self._speech_ended(conn)
        if ri.get("audioStreamEnd") and conn.in_speech:
            await self._speech_ended(conn)

    async def _vad(self, conn: FakeConnection, pcm: bytes, rate_hz: int) -> None:
        frame_bytes = rate_hz * VAD_FRAME_MS // 1000 * 2
        data = conn.remainder + pcm
        usable = len(data) - len(data) % frame_bytes
        conn.remainder = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        aad = conn.aad()
        silence_ms = int(aad.get("silenceDurationMs", 500))
        for frame in samples.reshape(-1, frame_bytes // 2) if usable else []:
            voiced = float(np.sqrt(np.mean(frame * frame))) > VOICED_RMS
            if not conn.in_speech:
                conn.voiced_ms = conn.voiced_ms + VAD_FRAME_MS if voiced else 0
                if conn.voiced_ms >= SPEECH_CONFIRM_MS:
                    await self._speech_started(conn)
                    conn.turn_audio_ms = conn.voiced_ms
                continue
            conn.turn_audio_ms += VAD_FRAME_MS
            conn.silence_ms = 0 if voiced else conn.silence_ms + VAD_FRAME_MS
            if conn.silence_ms >= silence_ms:
                await self._speech_ended(conn)

    async def _speech_started(self, conn: FakeConnection) -> None:
        conn.in_speech, conn.silence_ms = True, 0
        if self.voice_activity:
            await self._send(conn, {"voiceActivity": {"voiceActivityType": "ACTIVITY_START"}})
        if conn.interrupts:
            await self._barge_in(conn)

    async def _speech_ended(self, conn: FakeConnection) -> None:
        conn.in_speech, conn.voiced_ms, conn.silence_ms = False, 0, 0
        if self.voice_activity:
            await self._send(conn, {"voiceActivity": {"voiceActivityType": "ACTIVITY_END"}})
        await self._start_turn(conn, typed=None)

    # -- responses -------------------------------------------------------------------------------------
    async def _start_turn(self, conn: FakeConnection, typed: str | None) -> None:
        session = conn.session
        if session is None:
            return
        await self._barge_in(conn)
        if session.script_pos < len(self.script):
            turn = self.script[session.script_pos]
        else:
            turn = FakeTurn(self.default_reply)
        session.script_pos += 1
        conn.stop = asyncio.Event()
        conn.response = asyncio.create_task(self._respond(conn, turn, typed))

    async def _barge_in(self, conn: FakeConnection) -> None:
        """Stop a running response: it sends ``interrupted`` (+ cancellations) and ``turnComplete``."""
        task = conn.response
        if task is not None and not task.done():
            conn.stop.set()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task

    async def _pause(self, conn: FakeConnection, seconds: float) -> bool:
        """Sleep unless barged in; returns ``True`` when the response must stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.stop.wait(), seconds)
        return conn.stop.is_set()

    async def _respond(self, conn: FakeConnection, turn: FakeTurn, typed: str | None) -> None:
        session = conn.session
        assert session is not None
        user_ms, conn.turn_audio_ms = conn.turn_audio_ms, 0
        await self._issue_handle(conn, resumable=False)
        if typed is None:
            for word in _fragments(turn.user_transcript):
                await self._send(conn, {"serverContent": {"inputTranscription": {"text": word}}})
            session.history.append(("user", turn.user_transcript))
        if turn.go_away_ms is not None:
            self._spawn(self.go_away(turn.go_away_ms, conn))
        if turn.tool_call is not None and not await self._call_tool(conn, turn.tool_call):
            await self._interrupted(conn, sent_words=[])
            return
        audio = synthesize_pcm16(turn.reply, OUTPUT_RATE_HZ)
        chunk = OUTPUT_RATE_HZ * self.chunk_ms // 1000 * 2
        chunks = [audio[i : i + chunk] for i in range(0, len(audio), chunk)]
        words = _fragments(turn.reply)
        sent_words: list[str] = []
        for i, pcm in enumerate(chunks):
            if conn.stop.is_set():
                await self._interrupted(conn, sent_words)
                return
            part = {"inlineData": {"mimeType": f"audio/pcm;rate={OUTPUT_RATE_HZ}", "data": _b64(pcm)}}
            if not await self._send(
                conn, {"serverContent": {"modelTurn": {"role": "model", "parts": [part]}}}
            ):
                return
            conn.audio_bytes_out += len(pcm)
            due = words[: round(len(words) * (i + 1) / len(chunks))][len(sent_words) :]
            for word in due:
                await self._send(conn, {"serverContent": {"outputTranscription": {"text": word}}})
                sent_words.append(word)
            if await self._pause(conn, self.chunk_ms / 1000 / self.realtime_factor):
                await self._interrupted(conn, sent_words)
                return
        await self._send(conn, {"serverContent": {"generationComplete": True}})
        session.history.append(("model", turn.reply))
        prompt, response = user_ms * 32 // 1000, len(audio) // 2 * 25 // OUTPUT_RATE_HZ
        usage = {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": prompt}],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response}],
        }
        await self._send(conn, {"serverContent": {"turnComplete": True}, "usageMetadata": usage})
        await self._issue_handle(conn, resumable=True)

    async def _call_tool(self, conn: FakeConnection, call: FakeToolCall) -> bool:
        call_id = f"fc_{next(self._call_ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        conn.pending_calls[call_id] = fut
        await self._send(
            conn, {"toolCall": {"functionCalls": [{"id": call_id, "name": call.name, "args": call.args}]}}
        )
        stop: asyncio.Future[Any] = asyncio.ensure_future(conn.stop.wait())
        await asyncio.wait([fut, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        return fut.done()

    async def _interrupted(self, conn: FakeConnection, sent_words: list[str]) -> None:
        await self._send(conn, {"serverContent": {"interrupted": True}})
        if conn.pending_calls:
            ids = list(conn.pending_calls)
            conn.pending_calls.clear()
            await self._send(conn, {"toolCallCancellation": {"ids": ids}})
        if conn.session is not None and sent_words:
            conn.session.history.append(("model", "".join(sent_words).strip()))
        await self._send(conn, {"serverContent": {"turnComplete": True}})
        await self._issue_handle(conn, resumable=True)


async def _close(ws: ServerConnection, code: int, reason: str) -> None:
    """Close like the service: code + reason, cut to the 123 bytes a close frame can carry."""
    await ws.close(code, reason.encode()[:123].decode("utf-8", "ignore"))


def _rate(mime: str) -> int:
    for param in mime.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key == "rate" and value.isdigit():
            return int(value)
    return 16000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _fragments(text: str) -> list[str]:
    """Transcription fragments as the service sends them: words with their trailing space."""
    words = text.split()
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
