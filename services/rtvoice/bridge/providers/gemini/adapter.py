"""Gemini Live (BidiGenerateContent) behind the provider interface: a thin adapter over the shared
connection core (:class:`~rtvoice.bridge.providers.connection.ProviderLink`) and
:class:`~rtvoice.bridge.providers.gemini.wire.GeminiWire`.

Caller audio (PCM16 16 kHz) goes out as ``realtimeInput.audio``. With manual turn detection the caller's
turn is framed by ``activityStart`` (at its first audio, or at a barge-in, which is what stops the
generation on the server) and ``activityEnd`` (``end_turn``); otherwise ``end_turn`` sends
``audioStreamEnd``. There is no truncate on Gemini: the server keeps what it sent; the heard share of a
cut item is kept for history replay.
"""

from __future__ import annotations

import logging

from rtvoice.bridge.barge_in import Cut
from rtvoice.bridge.steering import plan_steer
from rtvoice.core.audio import PCM16_16K, PCM16_24K
from rtvoice.core.retry import Backoff
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb

from ..connection import LinkedProvider
from .codec import activity_message, audio_stream_end_message, encode, text_message, tool_response_message
from .setup import is_gemini3, websocket_url
from .wire import ACTIVITY_START, GeminiWire, settings_with

log = logging.getLogger(__name__)

#: Delays between reconnect attempts (the first attempt is immediate).
RECONNECT_BACKOFF = Backoff(initial_s=0.1, max_s=5.0, factor=2.0, jitter=0.2)
ACTIVITY_END = encode(activity_message(False))


class GeminiProvider(LinkedProvider):
    """Gemini Live conversation. ``base_url`` (tests, proxies) overrides ``settings.base_url`` and the
    default endpoint; a URL without a path gets the BidiGenerateContent path."""

    name = "gemini"
    input_format = PCM16_16K
    output_format = PCM16_24K

    def __init__(self, settings: AgentSettings, api_key: str | None, base_url: str | None = None) -> None:
        super().__init__(settings, api_key)
        url = websocket_url(base_url or settings.base_url)
        self.wire = GeminiWire(settings, api_key, url, transcripts=settings.modalities == "audio_text")
        self.wire.link = self._link(self.wire, "Gemini Live", RECONNECT_BACKOFF)
        self.stats = self.link.stats
        self._steer_base = settings

    @property
    def _manual(self) -> bool:
        return self.wire.settings.turn_detection.type == "none"

    async def send_audio(self, data: bytes) -> None:
        if self.link.ended or not data:
            return
        if self._manual and not self.wire.activity_open:
            await self._open_activity()
        await self.link.outlet.send_audio(data)

    async def _open_activity(self) -> None:
        self.wire.activity_open = True
        await self.link.outlet.send(ACTIVITY_START)
        self.link.stream.publish([self.wire.tracker.user.speech_started()])

    async def end_turn(self) -> None:
        if self.link.ended:
            return
        self.link.outlet.boundary()
        if not self._manual:
            await self.link.outlet.send(encode(audio_stream_end_message()))
        elif self.wire.activity_open:
            self.wire.activity_open = False
            await self.link.outlet.send(ACTIVITY_END)
            self.link.stream.publish([self.wire.tracker.user.speech_stopped()])

    async def send_text(self, text: str) -> None:
        if self.link.ended or not text:
            return
        self.wire.tracker.user.note_text(text)
        realtime = is_gemini3(self.wire.settings.effective_model)
        await self.link.outlet.send(encode(text_message(text, realtime=realtime)))

    async def interrupt(self, cut: Cut | None) -> None:
        # Drop the rest locally; in manual mode opening the caller's turn (activityStart) is what stops
        # the generation on the server.
        tracker = self.wire.tracker
        tracker.client_interrupt()
        if cut is not None:
            tracker.history.truncate(cut.item_id, cut.heard_ratio)
        if self._manual and not self.link.ended and not self.wire.activity_open:
            await self._open_activity()

    async def abandon_response(self) -> None:
        # Gemini has no cancel: the turn is closed locally (as if its connection was lost, the frames that
        # would close it for the caller are the session's) and no longer holds up a switch
        self.wire.tracker.connection_lost()

    async def steer(self, steer: pb.SteerFrame) -> None:
        """Every change is a new connection with the resumption handle and a new ``setup``, made
        when the current turn is over (``turnComplete``, no pending tool call); changes in between merge.
        Raises ``RealtimeProtocolError`` (``invalid_steer``) for settings Gemini cannot take."""
        plan, _ = plan_steer(steer, temperature_supported=True, voices=self.voices)
        if not plan:
            return
        self._steer_base = settings_with(self._steer_base, plan)  # validated now, applied at turn end
        if self.link.outlet.ws is None and not self.stats.connections:
            self.wire.settings = self._steer_base
            return
        await self.link.defer_steer(plan)

    async def send_tool_result(self, result: pb.ToolResult) -> None:
        name = self.wire.tracker.pending_calls.get(result.call_id)
        if name is None or self.link.ended:
            log.info("dropping result of tool call %s: cancelled or unknown", result.call_id)
            return
        self.wire.tracker.tool_result_sent(result.call_id)
        msg = tool_response_message(result.call_id, result.name or name, result.output, result.is_error)
        await self.link.outlet.send(encode(msg))
