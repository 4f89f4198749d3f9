"""The Gemini Live half of the shared connection core (docs/providers.md, "Gemini Live").

* open: ``x-goog-api-key`` header, ``setup`` (``setup.build_setup``; the newest resumable handle when
  replacing a connection), wait for ``setupComplete``;
* a replacement connection without a handle gets the transcript history as ``clientContent`` turns, and
  ``activityStart`` again when the caller's manual turn is open;
* every change of settings is a new connection with the handle and a new ``setup``, made when the
  turn is over; ``goAway`` plans a switch with a deadline;
* errors arrive only as close codes (``errors.classify_close``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection

from rtvoice.bridge.steering import SteerPlan
from rtvoice.core.errors import RealtimeError, RealtimeProtocolError
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb

from ..wire import Step, Wire
from .codec import activity_message, audio_message, decode_server_message, encode, history_message
from .errors import classify_close
from .setup import build_setup
from .translator import GeminiTurnTracker
from .ws import open_connection

if TYPE_CHECKING:
    from ..connection import ProviderLink

log = logging.getLogger(__name__)

ACTIVITY_START = encode(activity_message(True))


def settings_with(base: AgentSettings, plan: SteerPlan) -> AgentSettings:
    """``base`` with the set fields of ``plan``. Raises ``RealtimeProtocolError`` (``invalid_steer``)."""
    update = {k: v for k, v in asdict(plan).items() if v is not None}
    try:
        return AgentSettings.model_validate({**base.model_dump(), **update})
    except ValidationError as err:
        msg = err.errors()[0]["msg"]
        raise RealtimeProtocolError(f"invalid steer: {msg}", code="invalid_steer") from None


class GeminiWire(Wire):
    """Settings (changed by steering), the resumption handle, the turn tracker and the caller's manual
    activity state."""

    speech_times = False  # Gemini's VAD events carry no audio position: stamped on arrival

    def __init__(self, settings: AgentSettings, api_key: str | None, url: str, transcripts: bool) -> None:
        self.settings = settings
        self.api_key = api_key
        self.url = url
        self.tracker = GeminiTurnTracker(transcripts=transcripts)
        self.handle: str | None = None
        self._resumed_with_handle = False
        self.activity_open = False
        self.link: ProviderLink | None = None

    async def open(self, resumed: bool, on_message: Callable[[str | bytes], Step]) -> ClientConnection:
        handle = self.handle if resumed else None
        replay = handle is None and bool(self.tracker.history.replay())
        setup = build_setup(self.settings, resumption_handle=handle, initial_history=replay)
        ws = await open_connection(self.url, self.api_key, setup, lambda raw: on_message(raw).setup_complete)
        self._resumed_with_handle = handle is not None
        return ws

    def translate(self, raw: str | bytes) -> Step:
        step = self.tracker.handle(decode_server_message(raw))
        if step.handle:
            self.handle = step.handle
        return step

    def encode_audio(self, data: bytes) -> str:
        return encode(audio_message(data))

    def lost(
        self, planned: bool, code: int | None, reason: str
    ) -> tuple[list[pb.ServerFrame], RealtimeError | None]:
        # a turn cut by the close (or by the goAway deadline) never gets its turnComplete
        frames = self.tracker.connection_lost()
        if planned:
            return frames, None
        outcome = classify_close(code, reason)
        return frames, None if outcome.reconnect else outcome.error

    @property
    def busy(self) -> bool:
        return self.tracker.busy

    def preamble(self) -> list[str]:
        out = []
        turns = [] if self._resumed_with_handle else self.tracker.history.replay()
        if turns:
            roles = {"assistant": "model"}
            out.append(encode(history_message([(roles.get(r, r), t) for r, t in turns])))
        assert self.link is not None
        if self.activity_open and not self.link.outlet.holds_first(ACTIVITY_START):
            out.append(ACTIVITY_START)
        return out

    async def apply_steer(self, plan: SteerPlan) -> None:
        """The new settings take effect with a new connection (the handle keeps the conversation)."""
        self.settings = settings_with(self.settings, plan)
        assert self.link is not None
        self.link.plan_switch("steer")
