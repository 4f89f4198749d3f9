"""Per-connection behaviour of the fake OpenAI Realtime server (see ``tests/support/fake_openai.py``).

Test double of a remote paid API: scripted by :class:`Scenario`, built from the local engine's event
builders (``rtvoice.localrt.events`` / ``items``), validated by the owning ``FakeOpenAI``.
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
from websockets.asyncio.server import ServerConnection

from rtvoice.bridge.providers.openai.protocol import BETA_EVENT_RENAMES
from rtvoice.core import g711
from rtvoice.core.settings import deep_merge
from rtvoice.localrt import events as ev
from rtvoice.localrt import items as it
from tests.support.fake_openai_responses import ResponderMixin

VALID_KEY = "sk-test-valid-key-0000"
_GA_TO_BETA = {v: k for k, v in BETA_EVENT_RENAMES.items()}


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
    #: connection 0 waits this long before ``session.created`` (a slow first connect)
    connect_delay_s: float = 0.0
    #: on connection 0, once it received ``disrupt_at_in_ms`` of caller audio: ``close_1001`` (a
    #: ``going away`` close), ``tcp_drop`` (the TCP connection aborted, no close frame) or
    #: ``session_expired`` (the ``session_expired`` error, then a normal close)
    disrupt: str = ""
    disrupt_at_in_ms: float = 0.0
    #: the first N responses send ``response.created`` and then nothing (not even on cancel)
    silent_responses: int = 0


@dataclass
class Connection:
    """One accepted WebSocket: what it received and sent, in order (``log`` holds both with a counter)."""

    index: int
    headers: dict[str, str]
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    #: caller audio received (ms) and the part of it above the VAD threshold (speech, ms)
    in_ms: float = 0.0
    loud_ms: float = 0.0
    #: the ``audio_start_ms`` / ``audio_end_ms`` this connection reported (its own audio clock)
    speech_ms: list[tuple[str, int]] = field(default_factory=list)

    def client_events(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e["type"] == etype]

    def sent_events(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.sent if e["type"] == etype]


class FakeSession(ResponderMixin):
    """One connection of the fake: auth and shape checks, then client events → scripted server events."""

    def __init__(self, fake: Any, conn: Connection, ws: ServerConnection) -> None:
        self.fake, self.conn, self.ws = fake, conn, ws
        self.sc = fake.scenario
        self.shape = self.sc.shape
        self.session: dict[str, Any] = default_session(self.shape)
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
        if self.conn.index == 0 and self.sc.connect_delay_s:
            await asyncio.sleep(self.sc.connect_delay_s)  # scripted server behaviour: a slow connect
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
        self.conn.in_ms = self.in_ms
        self.buffer_ms += ms
        rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0
        if rms >= self.sc.vad_rms:
            self.conn.loud_ms += ms
        if self.sc.disrupt and self.conn.index == 0 and self.in_ms >= self.sc.disrupt_at_in_ms:
            await self.disrupt(self.sc.disrupt)
            return
        td = self.turn_detection
        if td is None:
            return
        if rms >= self.sc.vad_rms:
            self.silence_ms = 0.0
            if self.speech_start_ms is None:
                self.speech_start_ms = self.in_ms - ms
                self.speech_item = ev.new_id("item")
                self.conn.speech_ms.append(("started", int(self.speech_start_ms)))
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
                self.conn.speech_ms.append(("stopped", int(self.in_ms - self.silence_ms)))
                await self.send(
                    ev.input_audio_buffer_speech_stopped(int(self.in_ms - self.silence_ms), self.speech_item)
                )
                await self.commit(self.speech_item)
                if td.get("create_response", True):
                    self.start_response()

    async def disrupt(self, how: str) -> None:
        """End this connection the way ``how`` says (see ``Scenario.disrupt``)."""
        if how == "tcp_drop":
            self.ws.transport.abort()
        elif how == "session_expired":
            msg = "Your session hit the maximum duration of 60 minutes."
            await self.send(ev.error("session_expired", msg))
            await self.ws.close(1000)
        else:
            await self.ws.close(1001, "going away")

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


def default_session(shape: str) -> dict[str, Any]:
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
