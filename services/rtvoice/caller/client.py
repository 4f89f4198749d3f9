"""A headless caller on caller protocol v1 (docs/caller-protocol.md): the engine of ``rtvoice call``.

:func:`place_call` connects to ``ws://.../v1/agents/NS/NAME``, sends ``session.start``, streams the caller
audio at real-time pace in 20 ms frames followed by silence (or sends one typed ``text`` turn), plays the
agent's audio on a simulated clock (sending ``playback.mark`` every 100 ms, honouring ``audio.clear``),
and returns when the agent's first response with audio is done. Failures raise :class:`CallError` with
an exit code and a one-line message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from rtvoice.core.audio import AudioFormat
from rtvoice.core.latency import first_audio_latency_from_monotonic

FRAME_MS = 20
MARK_EVERY_MS = 100

EXIT_OK = 0
EXIT_NO_ANSWER = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_AUTH = 4
EXIT_SESSION = 5


#: After a failure, how long the caller still listens for ``session.ended`` and the close, s.
ENDING_WAIT_S = 3.0


class CallError(Exception):
    """The call failed; ``exit_code`` is one of the ``EXIT_*`` constants, the message one line.
    ``result`` is what the call got before it failed (``None`` when it never connected)."""

    def __init__(self, exit_code: int, message: str, result: CallResult | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.result = result


@dataclass(slots=True)
class CallOptions:
    """``url`` is the full caller WebSocket URL; ``audio`` PCM bytes in ``input_format`` (or ``text``);
    ``speech_end_ms`` where the caller's speech ends inside ``audio`` (for the latency); ``timeout_s`` how
    long to wait for an answer after the audio (or text) was sent; ``hold_s`` how long to stay on the line
    (sending silence) after the reply has played, before hanging up."""

    url: str
    token: str | None
    input_format: AudioFormat
    output_format: AudioFormat
    audio: bytes = b""
    text: str | None = None
    speech_end_ms: float | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    hold_s: float = 0.0


@dataclass(slots=True)
class CallResult:
    """What happened: ids (session, trace), transcripts ``[(role, text)]`` (finals), the reply audio as
    played (bytes of ``output_format``), the first-audio latency in ms (``None`` without audio; see
    :mod:`rtvoice.core.latency`), every error event, the ``session.ended`` reason (``""`` when the
    connection closed without one) and the WebSocket close code (``None``: no close frame, e.g. 1006)."""

    session_id: str = ""
    trace_id: str = ""
    provider: str = ""
    voice: str = ""
    transcripts: list[tuple[str, str]] = field(default_factory=list)
    reply: bytearray = field(default_factory=bytearray)
    first_audio_latency_ms: float | None = None
    server_latency_ms: float | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    ended_reason: str = ""
    close_code: int | None = None
    answered: bool = False
    dropped_audio_frames: int = 0
    #: Audio frames (20 ms each) this caller sent, speech and the silence after it.
    frames_sent: int = 0


class _Playback:
    """Simulated real-time playback of agent audio: what has been "played" of the current item."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self.item = ""
        self.item_bytes = 0
        self.item_start = 0.0  # reply offset where the item begins
        self.started_at: float | None = None

    def new_item(self, item: str, reply_len: int) -> None:
        self.item, self.item_bytes, self.item_start, self.started_at = item, 0, reply_len, None

    def add(self, nbytes: int, now: float) -> None:
        if self.started_at is None:
            self.started_at = now
        self.item_bytes += nbytes

    def played_ms(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        return min(self.fmt.duration_ms(self.item_bytes), (now - self.started_at) * 1000.0)

    def remaining_ms(self, now: float) -> float:
        """Received audio of the current item not played yet (a real caller listens to it)."""
        return self.fmt.duration_ms(self.item_bytes) - self.played_ms(now)


async def _connect(opts: CallOptions) -> ClientConnection:
    headers = {"Authorization": f"Bearer {opts.token}"} if opts.token else None
    try:
        return await connect(
            opts.url,
            additional_headers=headers,
            compression=None,
            open_timeout=opts.connect_timeout_s,
            max_size=4 << 20,
            user_agent_header="rtvoice-call",
        )
    except InvalidStatus as err:
        status = err.response.status_code
        body = err.response.body.decode("utf-8", "replace").strip() if err.response.body else ""
        code = EXIT_AUTH if status in (401, 403) else EXIT_CONNECT
        raise CallError(code, f"the ingress refused the call: HTTP {status} {body}".strip()) from None
    except InvalidURI as err:
        raise CallError(EXIT_USAGE, f"bad caller URL {opts.url!r}: {err}") from None
    except (OSError, TimeoutError, InvalidHandshake) as err:
        raise CallError(EXIT_CONNECT, f"cannot connect to {opts.url.split('?')[0]}: {err}") from None


async def place_call(opts: CallOptions, on_line: Callable[[str], None] = print) -> CallResult:
    """Run one call (see module docstring); ``on_line`` receives progress lines (transcripts, latency).

    Raises :class:`CallError`: ``EXIT_CONNECT`` / ``EXIT_AUTH`` when the connection is refused,
    ``EXIT_SESSION`` on a fatal error event or an early end, ``EXIT_NO_ANSWER`` after ``timeout_s``.
    """
    ws = await _connect(opts)
    call = _Call(ws, opts, on_line)
    try:
        return await call.run()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 3)


class _Call:
    def __init__(self, ws: ClientConnection, opts: CallOptions, on_line: Callable[[str], None]) -> None:
        self.ws = ws
        self.opts = opts
        self.on_line = on_line
        self.result = CallResult()
        self.play = _Playback(opts.output_format)
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.hang_up = asyncio.Event()
        self.failure: CallError | None = None
        self.failed = asyncio.Event()
        self.turn_end_at: float | None = None
        self.response_has_audio = False
        self.last_mark: tuple[str, int] | None = None

    async def run(self) -> CallResult:
        receiver = asyncio.create_task(self._receive())
        try:
            await self._converse()
        except CallError as err:
            # The ingress sends session.ended (the true reason) right after a fatal error: hear it out.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(receiver), ENDING_WAIT_S)
            err.result = self.result
            raise
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
        return self.result

    async def _converse(self) -> None:
        await self._send_json(
            {
                "type": "session.start",
                "input_format": self.opts.input_format.name,
                "output_format": self.opts.output_format.name,
                "metadata": {"client": "rtvoice-call"},
            }
        )
        await self._wait(self.started, self.opts.connect_timeout_s + 15, "the session did not start")
        sender = asyncio.create_task(self._send_audio())
        try:
            await self._wait(self.done, self._answer_deadline_s(), "")
            # Listen to the end of the reply before hanging up, as a person would: the session
            # (and its archive) then covers everything the agent said.
            await asyncio.sleep(min(60.0, max(0.0, self.play.remaining_ms(time.monotonic()) / 1000.0)))
            await asyncio.sleep(self.opts.hold_s)
        finally:
            self.hang_up.set()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await self._hang_up()

    def _answer_deadline_s(self) -> float:
        return self.opts.input_format.duration_ms(len(self.opts.audio)) / 1000.0 + self.opts.timeout_s

    async def _wait(self, event: asyncio.Event, timeout_s: float, what: str) -> None:
        failed = asyncio.ensure_future(self.failed.wait())
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({failed, waiter}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            waiter.cancel()
        if self.failure is not None:
            raise self.failure
        if not event.is_set():
            raise CallError(
                EXIT_NO_ANSWER, what or f"the agent did not answer within {self.opts.timeout_s:g} s"
            )

    async def _send_json(self, event: dict[str, Any]) -> None:
        try:
            await self.ws.send(json.dumps(event))
        except ConnectionClosed:
            self._fail(EXIT_SESSION, "the ingress closed the connection")

    def _fail(self, code: int, message: str) -> None:
        if self.failure is None and not self.done.is_set():
            self.failure = CallError(code, message)
            self.failed.set()

    # -------------------------------------------------------------------------------------------- sending

    async def _send_audio(self) -> None:
        fmt = self.opts.input_format
        step = fmt.bytes_for_ms(FRAME_MS)
        silence = bytes(step) if fmt.encoding == "pcm16" else b"\xff" * step  # µ-law silence is 0xFF
        audio = self.opts.audio
        t0 = time.monotonic()
        if self.opts.text is not None:
            await self._send_json({"type": "text", "text": self.opts.text})
            self.turn_end_at = time.monotonic()
        elif self.opts.speech_end_ms is not None:
            self.turn_end_at = t0 + self.opts.speech_end_ms / 1000.0
        k = 0
        while not self.hang_up.is_set():
            offset = k * step
            frame = audio[offset : offset + step] if offset < len(audio) else silence
            if len(frame) < step:
                frame += silence[: step - len(frame)]
            try:
                await self.ws.send(frame)
            except ConnectionClosed:
                return
            self.result.frames_sent += 1
            k += 1
            if k % (MARK_EVERY_MS // FRAME_MS) == 0:
                await self._mark()
            delay = t0 + k * FRAME_MS / 1000.0 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _mark(self) -> None:
        if not self.play.item:
            return
        mark = (self.play.item, int(self.play.played_ms(time.monotonic())))
        if mark != self.last_mark:
            self.last_mark = mark
            await self._send_json({"type": "playback.mark", "item_id": mark[0], "played_ms": mark[1]})

    async def _hang_up(self) -> None:
        await self._send_json({"type": "session.end"})
        ended = asyncio.ensure_future(self._until_closed())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended, 5)

    async def _until_closed(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.wait_closed()

    # ------------------------------------------------------------------------------------------ receiving

    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self._on_audio(message)
                else:
                    self._on_event(json.loads(message))
        except ConnectionClosed:
            pass
        self.result.close_code = self.ws.close_code
        if not self.result.ended_reason:
            self._fail(EXIT_SESSION, "the connection closed before the agent answered")

    def _on_audio(self, data: bytes) -> None:
        now = time.monotonic()
        if (
            self.result.first_audio_latency_ms is None
            and self.turn_end_at is not None
            and now >= self.turn_end_at
        ):
            # Audio before the end of our speech cannot answer it; the first audio after it is measured.
            self.result.first_audio_latency_ms = first_audio_latency_from_monotonic(self.turn_end_at, now)
            self.on_line(
                f"first audio: {self.result.first_audio_latency_ms:.0f} ms after the end of your turn"
            )
        self.response_has_audio = True
        self.play.add(len(data), now)
        self.result.reply.extend(data)

    def _on_event(self, ev: dict[str, Any]) -> None:
        etype = ev.get("type")
        if etype == "session.started":
            self.result.session_id = ev.get("session_id", "")
            self.result.trace_id = ev.get("trace_id", "")
            self.result.provider = ev.get("provider", "")
            self.result.voice = ev.get("voice", "")
            r = self.result
            self.on_line(f"connected: session {r.session_id} ({r.provider}, voice {r.voice})")
            self.started.set()
        elif etype == "audio.started":
            self.play.new_item(ev.get("item_id", ""), len(self.result.reply))
            if self.result.server_latency_ms is None and ev.get("latency_ms") is not None:
                self.result.server_latency_ms = float(ev["latency_ms"])
        elif etype == "audio.clear":
            self._truncate()
        elif etype == "transcript" and ev.get("final"):
            role = "you" if ev.get("role") == "user" else "agent"
            self.result.transcripts.append((ev.get("role", ""), ev.get("text", "")))
            self.on_line(f"{role}: {ev.get('text', '')}")
        elif etype == "response.done":
            if self.response_has_audio and ev.get("status") == "completed":
                self.result.answered = True
                self.done.set()
            self.response_has_audio = False
        elif etype == "error":
            self.result.errors.append(ev)
            self.on_line(f"error: {ev.get('kind')}/{ev.get('code')}: {ev.get('message')}")
            if ev.get("fatal"):
                self._fail(EXIT_SESSION, f"the session failed: {ev.get('code')}: {ev.get('message')}")
        elif etype == "session.ended":
            self.result.ended_reason = ev.get("reason", "")
            self.on_line(f"session ended: {self.result.ended_reason}")
            self.result.dropped_audio_frames = int(ev.get("dropped_audio_frames", 0))
            self._fail(
                EXIT_SESSION, f"the session ended before the agent answered ({self.result.ended_reason})"
            )

    def _truncate(self) -> None:
        """Barge-in: keep only what had been played of the current item."""
        played = self.opts.output_format.bytes_for_ms(self.play.played_ms(time.monotonic()))
        keep = int(self.play.item_start) + played
        del self.result.reply[keep:]
        self.play.item_bytes = played
