"""MongoDB for the recorder's span-sink tests.

No MongoDB server is installable here, so the wire-level tests use ``mockupdb``: a real MongoDB
wire-protocol server with scripted replies that real ``pymongo`` talks to (the mock is the server side
only; it lets the tests assert the exact commands). ``RTVOICE_TEST_MONGO_URI`` points the real-server test
at an actual MongoDB when one is available.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from mockupdb import MockupDB

REAL_MONGO_URI = os.environ.get("RTVOICE_TEST_MONGO_URI")
# pymongo 4.x refuses servers older than wire version 8 (MongoDB 4.2); present a modern one.
_HELLO = {"maxWireVersion": 21, "minWireVersion": 0, "maxBsonObjectSize": 16 * 1024 * 1024}


@pytest.fixture
def mockup_mongo() -> Iterator[MockupDB]:
    """A started MockupDB on 127.0.0.1 answering the handshake; other requests wait for the test's reply."""
    server = MockupDB(auto_ismaster=_HELLO)  # listens on localhost only
    server.run()
    yield server
    server.stop()


def documents(request: Any) -> list[dict[str, Any]]:
    """The documents of an ``insert`` command received by MockupDB (OP_MSG payload merged into the doc)."""
    return [dict(d) for d in request.doc["documents"]]


def span_doc(i: int, session_id: str = "sess-1") -> dict[str, Any]:
    """A span document as ``Span.to_dict`` makes it."""
    return {
        "session_id": session_id,
        "trace_id": "ab" * 16,
        "span_id": f"{i:016x}",
        "parent_span_id": None,
        "name": f"span-{i}",
        "start_unix_ns": 1_000_000 * i,
        "end_unix_ns": 1_000_000 * i + 500,
        "duration_ms": 0.0005,
        "attributes": {"i": i},
    }
