"""The OpenAI Realtime provider (also the local engine, which speaks the GA protocol): a thin adapter over
the shared connection core (:class:`~rtvoice.bridge.providers.connection.ProviderLink`) and
:class:`~rtvoice.bridge.providers.openai.wire.OpenAIWire`.

Barge-in (docs/providers.md, "Truncate"): ``response.cancel`` while a response runs, then
``conversation.item.truncate`` at the played position of the cut item, or ``conversation.item.delete``
when nothing of it was heard. Steering (docs/architecture.md, "Steering"): turn detection applies at
once; instructions and voice wait for the turn to end; temperature on GA is a non-fatal
``RealtimeUnsupportedError``. Tool outputs and text turns are followed by ``response.create`` once no
response is running.
"""

from __future__ import annotations

from rtvoice.bridge.barge_in import Cut
from rtvoice.bridge.providers.connection import LinkedProvider
from rtvoice.bridge.providers.openai import protocol as proto
from rtvoice.bridge.providers.openai.wire import OpenAIWire
from rtvoice.bridge.providers.openai.ws import realtime_url
from rtvoice.bridge.steering import plan_steer
from rtvoice.core.retry import Backoff
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb

#: Delays between reconnect attempts (the first attempt is immediate).
RECONNECT_BACKOFF = Backoff(initial_s=0.2, max_s=5.0, factor=2.0, jitter=0.2)


class OpenAIProvider(LinkedProvider):
    """OpenAI Realtime over WebSocket, GA shape by default, beta when ``settings.api_shape == "beta"``.

    ``base_url`` overrides ``settings.base_url`` (default ``wss://api.openai.com/v1/realtime``).
    """

    def __init__(self, settings: AgentSettings, api_key: str | None, base_url: str | None = None) -> None:
        super().__init__(settings, api_key)
        self.name = settings.provider
        self.input_format, self.output_format = proto.provider_formats(settings)
        url = realtime_url(base_url or settings.base_url, settings.effective_model)
        self.wire = OpenAIWire(settings, api_key, url, (self.input_format, self.output_format))
        max_age_s = float(settings.session.max_provider_session_s)
        self.wire.link = self._link(self.wire, self.name, RECONNECT_BACKOFF, max_age_s)
        self.stats = self.link.stats
        self.history = self.wire.history

    async def end_turn(self) -> None:
        self.link.outlet.boundary()
        await self.link.outlet.send(proto.COMMIT)
        await self.wire.request_response()

    async def send_text(self, text: str) -> None:
        item_id = proto.new_item_id()
        self.wire.history.set_text(item_id, "user", text)
        await self.link.outlet.send(proto.message_item("user", text, self.wire.shape, item_id))
        await self.wire.request_response()

    async def send_tool_result(self, result: pb.ToolResult) -> None:
        self.wire.pending_tool_outputs.append(result)
        if not self.wire.busy:
            await self.wire.idle()

    async def interrupt(self, cut: Cut | None) -> None:
        st = self.wire.translator.state
        send = self.link.outlet.send
        if st.busy:
            await send(proto.response_cancel(st.active_response_id))
        if cut is None or cut.item_id not in st.item_content_index:
            return  # nothing heard, or an item of an earlier connection
        if cut.played_ms > 0:
            await send(proto.truncate(cut.item_id, st.item_content_index[cut.item_id], cut.played_ms))
            self.wire.history.truncate(cut.item_id, cut.heard_ratio)
        else:
            await send(proto.delete_item(cut.item_id))
            self.wire.history.remove(cut.item_id)

    async def abandon_response(self) -> None:
        st = self.wire.translator.state
        if st.active_response_id is not None:
            await self.link.outlet.send(proto.response_cancel(st.active_response_id))
        self.wire.want_response = False
        self.wire.translator.forget_response()

    async def steer(self, steer: pb.SteerFrame) -> None:
        plan, unsupported = plan_steer(
            steer, temperature_supported=self.wire.shape == "beta", voices=self.voices
        )
        immediate, deferred = plan.split()
        if immediate:
            await self.wire.apply_steer(immediate)
        if deferred:
            await self.link.defer_steer(deferred)
        if unsupported is not None:
            raise unsupported
