"""The OpenAI half of the shared connection core: handshake, event translation, history replay, steering,
and the rule that ``response.create`` is sent only when no response runs.

A replacement connection (drop with a transient close code, recycle at ``session.maxProviderSessionS``,
voice change after the assistant has spoken, which OpenAI refuses with ``cannot_update_voice``) gets the
history replayed as text items; auth and quota failures end the conversation with their typed error.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection

from rtvoice.bridge.providers.history import ConversationHistory
from rtvoice.bridge.providers.openai import protocol as proto
from rtvoice.bridge.providers.openai.translator import EventTranslator
from rtvoice.bridge.providers.openai.ws import handshake, open_socket, parse_event
from rtvoice.bridge.providers.wire import Step, Wire
from rtvoice.bridge.steering import SteerPlan
from rtvoice.core.audio import AudioFormat
from rtvoice.core.errors import RealtimeError, RealtimeProviderError
from rtvoice.core.settings import AgentSettings, deep_merge
from rtvoice.v1 import frames_pb2 as pb

if TYPE_CHECKING:
    from rtvoice.bridge.providers.connection import ProviderLink

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


class OpenAIWire(Wire):
    """Conversation state that outlives connections (voice, instructions, turn detection, temperature,
    tool outputs and a response waiting to be asked for) and the per-connection translator."""

    def __init__(
        self, settings: AgentSettings, api_key: str | None, url: str, formats: tuple[AudioFormat, AudioFormat]
    ) -> None:
        self.settings = settings
        self.api_key = api_key
        self.url = url
        self.shape: proto.Shape = settings.api_shape if settings.provider == "openai" else "ga"
        self.input_format, self.output_format = formats
        self.voice = settings.effective_voice
        self.instructions = settings.instructions
        self.turn_detection = settings.turn_detection.model_copy()
        self.temperature = settings.temperature
        self.history = ConversationHistory()
        transcripts = settings.modalities == "audio_text"
        self.translator = EventTranslator(self.output_format, transcripts, self.history)
        self.pending_tool_outputs: list[pb.ToolResult] = []
        self.want_response = False
        self.link: ProviderLink | None = None

    # -- connection ------------------------------------------------------------------------------------

    async def open(self, resumed: bool, on_message: Callable[[str | bytes], Step]) -> ClientConnection:
        session = proto.session_config(
            self.settings,
            self.shape,
            voice=self.voice,
            instructions=self.instructions,
            turn_detection=self.turn_detection,
            temperature=self.temperature,
            input_format=self.input_format,
            output_format=self.output_format,
            with_overrides=True,
        )
        ws = await open_socket(self.url, self.api_key, self.shape, CONNECT_TIMEOUT_S)
        try:
            await handshake(ws, proto.session_update(session, self.shape), CONNECT_TIMEOUT_S)
        except BaseException:
            await ws.close()
            raise
        self.translator.new_connection()
        return ws

    def translate(self, raw: str | bytes) -> Step:
        evt = parse_event(raw)
        if self.shape == "beta":
            evt["type"] = proto.BETA_EVENT_RENAMES.get(evt["type"], evt["type"])
        return self.translator.handle(evt)

    def encode_audio(self, data: bytes) -> str:
        return proto.append_audio(base64.b64encode(data).decode("ascii"))

    def lost(
        self, planned: bool, code: int | None, reason: str
    ) -> tuple[list[pb.ServerFrame], RealtimeError | None]:
        frames = self.translator.connection_lost()
        if planned:
            return frames, None
        fatal = proto.classify_close(code, reason)
        if fatal is not None:
            return frames, fatal
        err = RealtimeProviderError(
            f"provider connection closed (code {code}); reconnecting",
            code="provider_reconnecting",
            retryable=True,
        )
        return [pb.ServerFrame(error=err.to_frame()), *frames], None

    @property
    def busy(self) -> bool:
        return self.translator.state.busy

    @property
    def quiet(self) -> bool:
        st = self.translator.state
        return not st.busy and not st.user_speaking and not self.pending_tool_outputs

    def preamble(self) -> list[str]:
        """The history as text items with fresh ids (assistant audio cannot be re-created)."""
        fresh = ConversationHistory()
        out = []
        for role, text in self.history.replay():
            item_id = proto.new_item_id()
            fresh.set_text(item_id, role, text)
            out.append(proto.message_item(role, text, self.shape, item_id))
        self.history.replace_with(fresh)
        return out

    # -- what waits for the turn to end ----------------------------------------------------------------

    async def apply_steer(self, plan: SteerPlan) -> None:
        """Send what ``plan`` changes; a voice change after assistant audio needs a new session."""
        partial: dict[str, Any] = {}
        if plan.turn_detection is not None:
            self.turn_detection = plan.turn_detection
            partial = deep_merge(partial, proto.partial_turn_detection(plan.turn_detection, self.shape))
        if plan.temperature is not None:
            self.temperature = plan.temperature
            partial["temperature"] = proto.clamp_beta_temperature(plan.temperature)
        if plan.instructions is not None:
            self.instructions = plan.instructions
            partial["instructions"] = plan.instructions
        if plan.voice is not None and plan.voice != self.voice:
            self.voice = plan.voice
            if self.translator.state.assistant_audio_present:
                self._link.plan_switch("voice change")
                return  # the new session gets every field from the start
            partial = deep_merge(partial, proto.partial_voice(plan.voice, self.shape))
        if partial:
            await self._link.outlet.send(proto.session_update(partial, self.shape))

    async def idle(self) -> None:
        if self.pending_tool_outputs:
            outputs, self.pending_tool_outputs = self.pending_tool_outputs, []
            for result in outputs:
                await self._link.outlet.send(proto.function_call_output(result.call_id, result.output))
            await self.request_response()
        elif self.want_response:
            await self.request_response()

    async def request_response(self) -> None:
        """``response.create`` now, or once the running response is done."""
        if self.busy:
            self.want_response = True
            return
        self.want_response = False
        self.translator.note_response_requested()
        await self._link.outlet.send(proto.RESPONSE_CREATE)

    @property
    def _link(self) -> ProviderLink:
        assert self.link is not None, "OpenAIWire used before its ProviderLink was attached"
        return self.link
