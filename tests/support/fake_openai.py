"""A protocol-faithful fake OpenAI Realtime server for bridge tests (GA and beta shapes).

This is a test double of a remote paid API that cannot run here. It speaks the wire protocol of
``shared/protocols.md`` §A over a real ``websockets`` server on 127.0.0.1:0 and follows the event order
of §A.4; server events are built with the local engine's builders (``rtvoice.localrt.events``). Every
client event it receives and every event it sends is validated against the ``openai`` package's own
realtime types (``openai.types.realtime`` for GA, ``openai.types.beta.realtime`` for beta); failures are
collected in :attr:`FakeOpenAI.validation_errors`, which tests assert to be empty.

Behaviour is scripted by a :class:`Scenario`: a simple energy VAD on the input audio clock (so tests may
send faster than real time), scripted user transcripts, spoken replies synthesized with espeak-ng at
test time, optional function calls, server-side barge-in cancellation, a late audio delta after
``response.cancel``, ``cannot_update_voice`` once assistant audio exists, truncate validation against the
audio sent, an invalid-key close 3000 and a mid-response close with a chosen code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets
from openai.types.beta.realtime import realtime_client_event as beta_client
from openai.types.beta.realtime import realtime_server_event as beta_server
from openai.types.realtime import realtime_client_event as ga_client
from openai.types.realtime import realtime_server_event as ga_server
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.server import ServerConnection

from rtvoice.bridge.providers.openai_protocol import BETA_EVENT_RENAMES
from rtvoice.core import g711
from rtvoice.core.audio import resample_once
from rtvoice.core.settings import deep_merge
from rtvoice.localrt import events as ev
from rtvoice.localrt import items as it
from tests.support.speech import synthesize_pcm16

VALID_KEY = "sk-test-valid-key-0000"
_GA_TO_BETA = {v: k for k, v in BETA_EVENT_RENAMES.items()}
_ADAPTERS = {
    ("ga", "client"): TypeAdapter(ga_client.RealtimeClientEvent),
    ("ga", "server"): TypeAdapter(ga_server.RealtimeServerEvent),
    ("beta", "client"): TypeAdapter(beta_client.RealtimeClientEvent),
    ("beta", "server"): TypeAdapter(beta_server.RealtimeServerEvent),
}


@dataclass
class Scenario:
    """Script of the fake. Durations in ms; ``pace_s`` = wall seconds between reply chunks."""

    shape: str = "ga"
    reply_text: str = "the weather is sunny"
    reply_audio_ms: int = 600
    chunk_ms: int = 40
    pace_s: float = 0.0
    user_transcript: str = "what is the weather today"
    vad_rms: float = 300.0
    tool_call: tuple[str, str] | None = None
    late_delta_after_cancel: bool = True
    close_code_mid_response: int | None = None
    close_after_ms: int = 200
    server_cancel_delay_s: float = 0.0


@dataclass
class Connection:
    """One accepted WebSocket: what it received and sent, in order (``log`` holds both with a counter)."""

    index: int
    headers: dict[str, str]
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)

    def client_events(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e["type"] == etype]

    def sent_events(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.sent if e["type"] == etype]


class FakeOpenAI:
    """``async with FakeOpenAI(scenario) as fake``: ``fake.url`` is ``ws://127.0.0.1:PORT/v1/realtime``."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario or Scenario()
        self.connections: list[Connection] = []
        self.validation_errors: list[str] = []
        self._server: Any = None
        self.url = ""

    async def __aenter__(self) -> FakeOpenAI:
        self._server = await websockets.serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1/realtime"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def validate(self, shape: str, direction: str, evt: dict[str, Any]) -> None:
        try:
            _ADAPTERS[(shape, direction)].validate_python(evt)
        except ValidationError as err:
            self.validation_errors.append(f"{direction} {evt.get('type')}: {err}")

    async def _handle(self, ws: ServerConnection) -> None:
        headers = {k.lower(): v for k, v in ws.request.headers.raw_items()} if ws.request else {}
        conn = Connection(len(self.connections), headers)
        self.connections.append(conn)
        await _Session(self, conn, ws).run()


def reply_audio(text: str, duration_ms: int, fmt: str) -> bytes:
    """Spoken ``text`` (espeak-ng) at 24 kHz PCM16 or µ-law 8 kHz, padded/cut to ``duration_ms``."""
    rate = 8000 if fmt == "audio/pcmu" else 24000
    pcm = np.frombuffer(synthesize_pcm16(text, 16000), dtype="<i2")
    samples = resample_once(pcm, 16000, rate)
    want = rate * duration_ms // 1000
    samples = np.concatenate([samples, np.zeros(max(0, want - samples.size), dtype=np.int16)])[:want]
    return g711.pcm16_to_ulaw(samples) if rate == 8000 else samples.astype("<i2").tobytes()


class _Session:
    def __init__(self, fake: FakeOpenAI, conn: Connection, ws: ServerConnection) -> None:
        self.fake, self.conn, self.ws = fake, conn, ws
        self.sc = fake.scenario
        self.shape = self.sc.shape
        self.session: dict[str, Any] = _default_session(self.shape)
        self.items: list[dict[str, Any]] = []
        self.item_audio_ms: dict[str, float] = {}
        self.response_task: asyncio.Task[None] | None = None
        self.cancel_reason = ""
        self.assistant_audio = False
        self.tool_called = False
        self.in_ms = 0.0
        self.speech_start_ms: float | None = None
        self.silence_ms = 0.0
        self.buffer_ms = 0.0
        self.speech_item = ""

    async def send(self, evt: dict[str, Any]) -> None:
        if self.shape == "beta":
            evt = {**evt, "type": _GA_TO_BETA.get(evt["type"], evt["type"])}
        self.fake.validate(self.shape, "server", evt)
        self.conn.sent.append(evt)
        self.conn.log.append(("sent", evt["type"]))
        await self.ws.send(json.dumps(evt))

    async def run(self) -> None:
        auth = self.conn.headers.get("authorization", "")
        beta_header = self.conn.headers.get("openai-beta") == "realtime=v1"
        if auth != f"Bearer {VALID_KEY}":
            await self.send(ev.error("invalid_api_key", "Incorrect API key provided."))
            await self.ws.close(3000, "invalid_request_error.invalid_api_key")
            return
        if beta_header != (self.shape == "beta"):
            await self.send(ev.error("beta_api_shape_disabled", "wrong API shape for this endpoint"))
            await self.ws.close(4000, "invalid_request_error.beta_api_shape_disabled")
            return
        await self.send(ev.session_created(self.session))
        try:
            async for raw in self.ws:
                evt = json.loads(raw)
                self.fake.validate(self.shape, "client", evt)
                self.conn.received.append(evt)
                self.conn.log.append(("received", evt["type"]))
                await self.dispatch(evt)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.response_task is not None:
                self.response_task.cancel()

    # -- client events -------------------------------------------------------------------------------

    async def dispatch(self, evt: dict[str, Any]) -> None:
        handler = getattr(self, "on_" + evt["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(evt)

    async def on_session_update(self, evt: dict[str, Any]) -> None:
        sess = evt["session"]
        if self.shape == "ga" and sess.get("type") != "realtime":
            await self.send(
                ev.error("missing_required_parameter", "Missing session.type", param="session.type")
            )
            return
        if self.shape == "ga" and "temperature" in sess:
            await self.send(ev.error("unknown_parameter", "Unknown parameter: 'session.temperature'."))
            return
        new_voice = sess.get("voice") or ((sess.get("audio") or {}).get("output") or {}).get("voice")
        if new_voice and new_voice != self.voice and self.assistant_audio:
            msg = "Cannot update a conversation's voice if assistant audio is present."
            await self.send(ev.error("cannot_update_voice", msg))
            return
        self.session = deep_merge(self.session, sess)
        await self.send(ev.session_updated(self.session))

    @property
    def voice(self) -> str:
        if self.shape == "beta":
            return str(self.session.get("voice"))
        return str(self.session["audio"]["output"]["voice"])

    @property
    def in_format(self) -> str:
        if self.shape == "beta":
            return "audio/pcmu" if self.session.get("input_audio_format") == "g711_ulaw" else "audio/pcm"
        return str(self.session["audio"]["input"]["format"]["type"])

    @property
    def out_format(self) -> str:
        if self.shape == "beta":
            return "audio/pcmu" if self.session.get("output_audio_format") == "g711_ulaw" else "audio/pcm"
        return str(self.session["audio"]["output"]["format"]["type"])

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        if self.shape == "beta":
            td: dict[str, Any] | None = self.session.get("turn_detection")
        else:
            td = self.session["audio"]["input"].get("turn_detection")
        return td

    async def on_input_audio_buffer_append(self, evt: dict[str, Any]) -> None:
        data = base64.b64decode(evt["audio"])
        if self.in_format == "audio/pcmu":
            pcm, ms = g711.ulaw_to_pcm16(data), len(data) / 8.0
        else:
            pcm, ms = np.frombuffer(data, dtype="<i2"), len(data) / 48.0
        self.in_ms += ms
        self.buffer_ms += ms
        td = self.turn_detection
        if td is None:
            return
        rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0
        if rms >= self.sc.vad_rms:
            self.silence_ms = 0.0
            if self.speech_start_ms is None:
                self.speech_start_ms = self.in_ms - ms
                self.speech_item = ev.new_id("item")
                await self.send(
                    ev.input_audio_buffer_speech_started(int(self.speech_start_ms), self.speech_item)
                )
                if self.response_task is not None and td.get("interrupt_response", True):
                    task = self.response_task
                    asyncio.get_running_loop().call_later(
                        self.sc.server_cancel_delay_s, self.vad_cancel, task
                    )
        elif self.speech_start_ms is not None:
            self.silence_ms += ms
            if self.silence_ms >= int(td.get("silence_duration_ms") or 500):
                self.speech_start_ms = None
                await self.send(
                    ev.input_audio_buffer_speech_stopped(int(self.in_ms - self.silence_ms), self.speech_item)
                )
                await self.commit(self.speech_item)
                if td.get("create_response", True):
                    self.start_response()

    def vad_cancel(self, task: asyncio.Task[None]) -> None:
        """Server-side barge-in: cancel the response (if the client has not cancelled it already)."""
        if self.response_task is task and not task.done():
            self.cancel_reason = "turn_detected"
            task.cancel()

    async def commit(self, item_id: str) -> None:
        prev = self.items[-1]["id"] if self.items else None
        item = it.user_audio_item(item_id, None)
        self.items.append(item)
        self.buffer_ms = 0.0
        await self.send(ev.input_audio_buffer_committed(item_id, prev))
        await self.item_added(item, prev)
        if self.transcription_on:
            await self.send(
                ev.conversation_item_input_audio_transcription_completed(
                    item_id, 0, self.sc.user_transcript, 1.0
                )
            )

    @property
    def transcription_on(self) -> bool:
        if self.shape == "beta":
            return bool(self.session.get("input_audio_transcription"))
        return bool(self.session["audio"]["input"].get("transcription"))

    async def item_added(self, item: dict[str, Any], prev: str | None) -> None:
        if self.shape == "beta":
            await self.send({**ev.conversation_item_added(item, prev), "type": "conversation.item.created"})
        else:
            await self.send(ev.conversation_item_added(item, prev))
            await self.send(ev.conversation_item_done(item, prev))

    async def on_input_audio_buffer_commit(self, evt: dict[str, Any]) -> None:
        if self.buffer_ms < 100:
            msg = f"buffer too small. Expected at least 100ms of audio, but buffer has {self.buffer_ms}ms"
            await self.send(ev.error("input_audio_buffer_commit_empty", msg))
            return
        await self.commit(ev.new_id("item"))

    async def on_conversation_item_create(self, evt: dict[str, Any]) -> None:
        item = dict(evt["item"])
        item.setdefault("id", ev.new_id("item"))
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        prev = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        await self.item_added(item, prev)

    async def on_response_create(self, evt: dict[str, Any]) -> None:
        if self.response_task is not None:
            await self.send(
                ev.error("conversation_already_has_active_response", "active response in progress")
            )
            return
        self.start_response()

    async def on_response_cancel(self, evt: dict[str, Any]) -> None:
        if self.response_task is None:
            await self.send(
                ev.error("response_cancel_not_active", "Cancellation failed: no active response found")
            )
            return
        if not self.cancel_reason:
            self.cancel_reason = "client_cancelled"
        self.response_task.cancel()

    async def on_conversation_item_truncate(self, evt: dict[str, Any]) -> None:
        item_id, end_ms = evt["item_id"], evt["audio_end_ms"]
        if item_id not in self.item_audio_ms:
            await self.send(
                ev.error("unsupported_content_type", "Only model output audio messages can be truncated")
            )
        elif end_ms > self.item_audio_ms[item_id] + 0.5:
            msg = f"audio_end_ms {end_ms} exceeds the item's audio ({self.item_audio_ms[item_id]:.0f} ms)"
            await self.send(ev.error("invalid_value", msg, param="audio_end_ms"))
        else:
            await self.send(ev.conversation_item_truncated(item_id, evt["content_index"], end_ms))

    async def on_conversation_item_delete(self, evt: dict[str, Any]) -> None:
        self.items = [i for i in self.items if i["id"] != evt["item_id"]]
        await self.send(ev.conversation_item_deleted(evt["item_id"]))

    # -- responses ------------------------------------------------------------------------------------

    def start_response(self) -> None:
        self.response_task = asyncio.create_task(self.respond())

    async def respond(self) -> None:
        try:
            await self._respond()
        finally:
            if self.response_task is asyncio.current_task():
                self.response_task = None

    async def _respond(self) -> None:
        rid = ev.new_id("resp")
        conv = "conv_fake"
        modal = ["audio"]
        await self.send(
            ev.response_created(
                it.response_object(rid, "in_progress", conversation_id=conv, output_modalities=modal)
            )
        )
        await self.send(ev.rate_limits_updated())
        last = self.items[-1] if self.items else {}
        if self.sc.tool_call and not self.tool_called and last.get("type") != "function_call_output":
            self.tool_called = True
            await self.function_call(rid)
            await self.send(
                ev.response_done(
                    it.response_object(rid, "completed", conversation_id=conv, output_modalities=modal)
                )
            )
            self.response_task = None
            return
        text = self.sc.reply_text
        if last.get("type") == "function_call_output":
            text = "the tool says " + str(last.get("output", ""))[:40]
        await self.speak(rid, conv, text)

    async def function_call(self, rid: str) -> None:
        assert self.sc.tool_call is not None
        name, args = self.sc.tool_call
        item_id, call_id = ev.new_id("item"), ev.new_id("call")[:30]
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        await self.send(ev.response_output_item_added(rid, 0, item))
        await self.send(ev.response_function_call_arguments_delta(rid, item_id, 0, call_id, args))
        await self.send(ev.response_function_call_arguments_done(rid, item_id, 0, call_id, name, args))
        done = {**item, "status": "completed", "arguments": args}
        self.items.append(done)
        await self.send(ev.response_output_item_done(rid, 0, done))

    async def speak(self, rid: str, conv: str, text: str) -> None:
        item_id = ev.new_id("item")
        part_type = "audio"
        prev = self.items[-1]["id"] if self.items else None
        await self.send(ev.response_output_item_added(rid, 0, it.assistant_item(item_id, "in_progress", [])))
        await self.item_added(it.assistant_item(item_id, "in_progress", []), prev)
        await self.send(
            ev.response_content_part_added(rid, item_id, 0, 0, {"type": part_type, "transcript": ""})
        )
        audio = reply_audio(text, self.sc.reply_audio_ms, self.out_format)
        bpm = 8 if self.out_format == "audio/pcmu" else 48
        step = self.sc.chunk_ms * bpm
        words = text.split()
        sent_ms = 0.0
        status, reason = "completed", None
        closed_mid = False
        try:
            for n, off in enumerate(range(0, len(audio), step)):
                chunk = audio[off : off + step]
                if n < len(words):
                    await self.send(
                        ev.response_output_audio_transcript_delta(rid, item_id, 0, 0, words[n] + " ")
                    )
                await self.send(
                    ev.response_output_audio_delta(rid, item_id, 0, 0, base64.b64encode(chunk).decode())
                )
                self.assistant_audio = True
                sent_ms += len(chunk) / bpm
                self.item_audio_ms[item_id] = sent_ms
                code = self.sc.close_code_mid_response
                if code is not None and self.conn.index == 0 and sent_ms >= self.sc.close_after_ms:
                    closed_mid = True
                    await self.ws.close(code, "going away")
                    return
                if self.sc.pace_s:
                    await asyncio.sleep(self.sc.pace_s)
                else:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if closed_mid:
                raise
            status, reason = "cancelled", self.cancel_reason or "client_cancelled"
            if self.sc.late_delta_after_cancel and reason == "client_cancelled":
                late = base64.b64encode(audio[:step]).decode()
                await self.send(ev.response_output_audio_delta(rid, item_id, 0, 0, late))
        heard = " ".join(words) if status == "completed" else ""
        await self.send(ev.response_output_audio_done(rid, item_id, 0, 0))
        await self.send(ev.response_output_audio_transcript_done(rid, item_id, 0, 0, heard or text))
        part = {"type": part_type, "transcript": heard or text}
        await self.send(ev.response_content_part_done(rid, item_id, 0, 0, part))
        item_status = "completed" if status == "completed" else "incomplete"
        final = it.assistant_item(item_id, item_status, [{"type": "output_audio", "transcript": text}])
        if self.shape == "beta":
            final["content"] = [{"type": "audio", "transcript": text}]
        self.items.append(final)
        await self.send(ev.response_output_item_done(rid, 0, final))
        if self.shape == "ga":
            await self.send(ev.conversation_item_done(final, prev))
        details = {"type": status, "reason": reason} if reason else None
        usage = it.usage(10, 20, 5, int(sent_ms / 100))
        resp = it.response_object(
            rid,
            status,
            conversation_id=conv,
            output_modalities=["audio"],
            output=[final],
            status_details=details,
            usage_=usage,
        )
        self.response_task = None
        self.cancel_reason = ""
        await self.send(ev.response_done(resp))


def _default_session(shape: str) -> dict[str, Any]:
    if shape == "beta":
        return {
            "id": ev.new_id("sess"),
            "object": "realtime.session",
            "model": "gpt-4o-realtime-preview",
            "modalities": ["text", "audio"],
            "instructions": "",
            "voice": "alloy",
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
            },
            "tools": [],
            "tool_choice": "auto",
            "temperature": 0.8,
            "max_response_output_tokens": "inf",
        }
    return {
        "type": "realtime",
        "id": ev.new_id("sess"),
        "object": "realtime.session",
        "model": "gpt-realtime",
        "expires_at": int(time.time()) + 3600,
        "output_modalities": ["audio"],
        "instructions": "",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "create_response": True,
                    "interrupt_response": True,
                    "idle_timeout_ms": None,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
    }
