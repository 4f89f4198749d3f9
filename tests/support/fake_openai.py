"""A protocol-faithful fake OpenAI Realtime server for bridge tests (GA and beta shapes).

This is a test double of a remote paid API that cannot run here. It speaks the wire protocol of
docs/providers.md ("OpenAI Realtime") over a real ``websockets`` server on 127.0.0.1:0, in the event
order of a voice turn given there; server events are built with the local engine's builders
(``rtvoice.localrt.events``). Every
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

from typing import Any

import websockets
from openai.types.beta.realtime import realtime_client_event as beta_client
from openai.types.beta.realtime import realtime_server_event as beta_server
from openai.types.realtime import realtime_client_event as ga_client
from openai.types.realtime import realtime_server_event as ga_server
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.server import ServerConnection

from tests.support.fake_openai_session import VALID_KEY, Connection, FakeSession, Scenario

__all__ = ["VALID_KEY", "Connection", "FakeOpenAI", "Scenario"]

_ADAPTERS: dict[tuple[str, str], TypeAdapter[Any]] = {
    ("ga", "client"): TypeAdapter(ga_client.RealtimeClientEvent),
    ("ga", "server"): TypeAdapter(ga_server.RealtimeServerEvent),
    ("beta", "client"): TypeAdapter(beta_client.RealtimeClientEvent),
    ("beta", "server"): TypeAdapter(beta_server.RealtimeServerEvent),
}


class FakeOpenAI:
    """``async with FakeOpenAI(scenario) as fake``: ``fake.url`` is ``ws://127.0.0.1:PORT/v1/realtime``."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario or Scenario()
        self.connections: list[Connection] = []
        self.validation_errors: list[str] = []
        self.responses_started = 0
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
        await FakeSession(self, conn, ws).run()
