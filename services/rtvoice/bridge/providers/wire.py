"""What a provider package gives the shared connection core (``providers.connection``).

A provider package is a sans-IO translator (one wire message → :class:`Step`) plus a :class:`Wire`: how to
open and handshake a connection, how to encode caller audio, what a replacement connection must be sent
first (history replay; nothing when a resumption handle carries the conversation), what a lost connection
leaves behind, and when the conversation is busy (no planned switch, no deferred change).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection

from rtvoice.bridge.steering import SteerPlan
from rtvoice.core.errors import RealtimeError
from rtvoice.v1 import frames_pb2 as pb


@dataclass(slots=True)
class Step:
    """What one server message produced: frames for the session plus connection control."""

    frames: list[pb.ServerFrame] = field(default_factory=list)
    #: a typed error (fatal: the conversation ends; else reported and the session goes on)
    error: RealtimeError | None = None
    #: the handshake is over (Gemini ``setupComplete``)
    setup_complete: bool = False
    #: newest resumption handle (Gemini ``sessionResumptionUpdate``)
    handle: str | None = None
    #: the provider will close this connection in this many ms (Gemini ``goAway``; 0 = no time given)
    go_away_ms: int | None = None
    #: a response or model turn ended (OpenAI ``response.done``, Gemini ``turnComplete``)
    turn_complete: bool = False


class Wire(abc.ABC):
    """The provider-specific half of a conversation's connections."""

    #: whether speech events carry provider audio times (OpenAI); else they are stamped on arrival
    speech_times: bool = True

    @abc.abstractmethod
    async def open(self, resumed: bool, on_message: Callable[[str | bytes], Step]) -> ClientConnection:
        """A connection past its handshake; ``resumed`` = it replaces a previous one. Server messages read
        during the handshake go to ``on_message``. Raises a typed ``RealtimeError`` (``retryable`` set)."""

    @abc.abstractmethod
    def translate(self, raw: str | bytes) -> Step:
        """One server message. Raises ``RealtimeError`` (reported, the connection goes on) or
        ``KeyError``/``TypeError``/``ValueError`` for a malformed message (reported as ``bad_event``)."""

    @abc.abstractmethod
    def encode_audio(self, data: bytes) -> str:
        """The client message appending caller audio ``data`` (provider input format)."""

    @abc.abstractmethod
    def lost(
        self, planned: bool, code: int | None, reason: str
    ) -> tuple[list[pb.ServerFrame], RealtimeError | None]:
        """The connection ended (close ``code``/``reason``; ``planned`` = we closed it to switch): the
        frames that close what it left open, and the fatal error when the conversation cannot go on."""

    @property
    @abc.abstractmethod
    def busy(self) -> bool:
        """A response runs (or was asked for) or a tool call is unanswered: deferred changes wait."""

    @property
    def quiet(self) -> bool:
        """Nothing in flight: a planned switch may happen now."""
        return not self.busy

    def preamble(self) -> list[str]:
        """Messages a replacement connection gets before anything else (history replay)."""
        return []

    @abc.abstractmethod
    async def apply_steer(self, plan: SteerPlan) -> None:
        """Apply deferred changes (voice, instructions, ...) now that the turn is over."""

    async def idle(self) -> None:  # noqa: B027 - optional hook
        """The turn is over and nothing is in flight (after a turn end or a switch): send what waited."""
