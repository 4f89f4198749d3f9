"""Property-based: random and malformed caller messages never crash the ingress.

One ingress + fake bridge run on an event loop in a background thread for the whole module; hypothesis
drives sessions against it. Per example: every reply to junk is a typed ``error`` event, the session is
still alive afterwards (a probe event is answered), and a concurrent "canary" session keeps getting
answers. No unhandled exception may reach the loop's exception handler or the ``rtvoice`` error log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtvoice.core.errors import ERROR_KIND_NAMES
from rtvoice.ingress.protocol import CALLER_FORMATS, CLIENT_EVENT_TYPES
from rtvoice.ingress.server import IngressServer
from tests.support.fake_bridge import FakeBridge
from tests.support.ingress import ProtoCaller, caller, running_ingress, token

T = TypeVar("T")
KINDS = set(ERROR_KIND_NAMES.values())


class LoopThread:
    """An asyncio loop in a daemon thread hosting the ingress and the fake bridge."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.unhandled: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.unhandled.append(ctx))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Harness:
    def __init__(self, lt: LoopThread) -> None:
        self.lt = lt
        self.bridge: FakeBridge
        self.server: IngressServer
        self.canary: ProtoCaller
        self._stack: Any = None

    async def start(self) -> None:
        import contextlib

        self._stack = contextlib.AsyncExitStack()
        self.bridge = await FakeBridge(reply_ms=40).start()
        self.server = await self._stack.enter_async_context(running_ingress(self.bridge.address))
        self.canary = await self._stack.enter_async_context(caller(self.url, token()))
        await self.canary.start()

    @property
    def url(self) -> str:
        return self.server.ws_url("default/assistant")

    async def stop(self) -> None:
        await self._stack.aclose()
        await self.bridge.stop(0)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    lt = LoopThread()
    h = Harness(lt)
    errors = ErrorRecords()
    logging.getLogger("rtvoice").addHandler(errors)
    lt.run(h.start())
    try:
        yield h
    finally:
        logging.getLogger("rtvoice").removeHandler(errors)
        lt.run(h.stop())
        lt.stop()
    assert not lt.unhandled, lt.unhandled
    assert not errors.records, [r.getMessage() for r in errors.records]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(json_values, st.sampled_from(CALLER_FORMATS), st.integers(-(2**40), 2**40))
event_types = st.sampled_from([t for t in CLIENT_EVENT_TYPES if t != "session.end"]) | st.text(max_size=16)
events = st.builds(
    lambda t, extra: json.dumps({"type": t, **extra}),
    event_types,
    st.dictionaries(
        st.sampled_from(
            [
                "text",
                "item_id",
                "played_ms",
                "voice",
                "instructions",
                "temperature",
                "turn_detection",
                "input_format",
                "output_format",
                "overrides",
                "metadata",
                "content_index",
                "junk",
            ]
        ),
        field_values,
        max_size=4,
    ),
)
messages = st.one_of(
    events,
    st.text(max_size=200),
    st.binary(max_size=700),
    st.integers(32001, 40000).map(lambda n: bytes(n)),  # over the frame size limit
    json_values.map(json.dumps),
)


async def _exchange(h: Harness, batch: list[str | bytes], start_first: bool) -> None:
    async with caller(h.url, token()) as c:
        if start_first:
            await c.start()
        for message in batch:
            await c.send(message)
        await c.send({"type": "no.such.event"})  # the probe: answered with a typed error while alive
        await c.expect("error", code="unknown_type")
        for event in c.events:
            assert event["type"] in {
                "error",
                "session.started",
                "response.started",
                "response.done",
                "transcript",
                "audio.started",
                "audio.clear",
                "speech.started",
                "speech.stopped",
            }, event
            if event["type"] == "error":
                assert event["kind"] in KINDS and event["code"] and event["message"], event
                assert event["fatal"] is False, event
        assert not c.of_type("session.ended")
    # The canary, in its own session, is still answered.
    await h.canary.send({"type": "text", "text": "canary"})
    await h.canary.expect("response.done")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(messages, min_size=1, max_size=12), start_first=st.booleans())
def test_random_messages_get_typed_errors_and_never_crash(
    harness: Harness, batch: list[str | bytes], start_first: bool
) -> None:
    harness.lt.run(_exchange(harness, batch, start_first))
    assert harness.server.sessions  # the canary
    assert not harness.lt.unhandled
