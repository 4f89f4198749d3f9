"""The provider interface of the realtime-bridge.

A provider adapter owns one logical conversation with a speech-to-speech model (OpenAI Realtime, Gemini
Live, the local engine) and hides its wire protocol, reconnects and resumption behind neutral frames
(``rtvoice.v1.ServerFrame``). The bridge session (``rtvoice.bridge.session``) drives it:

* caller audio goes in through :meth:`RealtimeProvider.send_audio` already validated and converted to
  :attr:`RealtimeProvider.input_format`;
* :meth:`RealtimeProvider.events` yields ``ServerFrame`` messages: ``audio`` (in
  :attr:`RealtimeProvider.output_format`, with ``item_id``), ``transcript``, ``speech_started``,
  ``speech_stopped`` (times on the session clock, see ``rtvoice.bridge.clock``), ``response_started``,
  ``response_done``, ``tool_call``, non-fatal ``error`` and, last, ``end`` when the conversation is
  over (fatal errors come as ``error`` with ``fatal=True`` then ``end``). The iterator ends after
  ``end``. An ``audio`` frame with empty ``data`` (optional) marks the end of that item's audio: the
  session flushes its resampler tail there (it also flushes when the item changes and at
  ``response_done``).
* barge-in, steering, text turns, tool results and manual turns are method calls.

Adapters raise the typed errors of ``rtvoice.core.errors`` from their methods only for problems of the
request itself (e.g. ``RealtimeUnsupportedError`` for a steer the provider cannot honour); connection
trouble is reported through the event stream so the voice loop never blocks on it.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from rtvoice.bridge.barge_in import Cut
from rtvoice.core.audio import AudioFormat
from rtvoice.core.catalog import VoiceSet, provider
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb


class RealtimeProvider(abc.ABC):
    """One provider conversation. Create with the effective agent settings and the API key."""

    #: ``openai`` | ``gemini`` | ``local``
    name: str
    #: Format :meth:`send_audio` expects (e.g. PCM16 24 kHz for OpenAI GA, 16 kHz for Gemini).
    input_format: AudioFormat
    #: Format of ``audio`` frames from :meth:`events` (24 kHz PCM16 for both providers, or µ-law).
    output_format: AudioFormat

    def __init__(self, settings: AgentSettings, api_key: str | None) -> None:
        self.settings = settings
        self.api_key = api_key

    @property
    def voices(self) -> VoiceSet:
        """The voices this session's provider protocol offers (the catalog's list for its ``apiShape``)."""
        return provider(self.settings.provider).profile(self.settings.api_shape).voices

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the provider session and send the initial configuration.

        Raises ``RealtimeAuthError`` (bad key), ``RealtimeProviderError`` (unreachable, unknown model;
        ``retryable`` set accordingly) or ``RealtimeReadTimeout`` (no answer in time).
        """

    @abc.abstractmethod
    def events(self) -> AsyncIterator[pb.ServerFrame]:
        """Neutral frames from the provider, in order, until an ``end`` frame (see module docstring)."""

    @abc.abstractmethod
    async def send_audio(self, data: bytes) -> None:
        """Append caller audio in :attr:`input_format`. Buffered (bounded) while reconnecting."""

    @abc.abstractmethod
    async def end_turn(self) -> None:
        """Manual turn detection: commit the caller's audio and ask for a response."""

    @abc.abstractmethod
    async def send_text(self, text: str) -> None:
        """A typed user turn; the model answers in audio."""

    @abc.abstractmethod
    async def interrupt(self, cut: Cut | None) -> None:
        """Barge-in: stop the current response and make the model forget what the caller never heard.

        ``cut`` (from the session's ``BargeIn``) names the item the caller was hearing and how much of it
        was played (``None``: no item to truncate). OpenAI: ``response.cancel`` if active, then
        ``conversation.item.truncate`` at the played ms, or ``conversation.item.delete`` at 0 ms. Gemini:
        nothing to truncate (the server keeps what it sent); the heard share is kept for history replay.
        """

    @abc.abstractmethod
    async def abandon_response(self) -> None:
        """The session's watchdog gave up on the running (or awaited) response: cancel it at the provider
        if it runs and forget it locally, so the next turn is not held up by it."""

    @abc.abstractmethod
    async def steer(self, steer: pb.SteerFrame) -> None:
        """Apply a mid-session change (voice, instructions, temperature, turn detection).

        Raises ``RealtimeUnsupportedError`` (non-fatal) for a change the provider cannot make.
        """

    @abc.abstractmethod
    async def send_tool_result(self, result: pb.ToolResult) -> None:
        """Return a tool's output to the model, which then continues speaking."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the provider session; idempotent. ``events`` ends soon after."""
