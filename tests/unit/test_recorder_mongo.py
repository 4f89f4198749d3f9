"""The MongoDB span sink at the wire level (real pymongo ↔ mockupdb), and against a real MongoDB if given."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from mockupdb import MockupDB

from rtvoice.recorder.span_sink import MongoSpanSink
from tests.support.mongo import REAL_MONGO_URI, documents, mockup_mongo, span_doc
from tests.support.recorder import Frames, load_archive, running_recorder, send_session

__all__ = ["mockup_mongo"]  # the fixture, imported for pytest


def _sink(server: MockupDB, **kw: float) -> MongoSpanSink:
    return MongoSpanSink(server.uri, "rtvoice", server_selection_timeout_ms=5000, **kw)  # type: ignore[arg-type]


def test_indexes_at_start_then_batched_inserts(mockup_mongo: MockupDB) -> None:
    sink = _sink(mockup_mongo, batch_size=3, flush_interval_s=0.3)
    sink.start()
    try:
        req = mockup_mongo.receives(timeout=10)
        assert req.command_name == "createIndexes" and req.doc["createIndexes"] == "workflow_spans"
        assert req.doc["$db"] == "rtvoice"
        assert [(dict(i["key"]), i["name"]) for i in req.doc["indexes"]] == [
            ({"session_id": 1}, "session_id_1"),
            ({"start_unix_ns": 1}, "start_unix_ns_1"),
        ]
        req.ok()
        for i in range(5):
            assert sink.offer(span_doc(i))
        first = mockup_mongo.receives(timeout=10)
        assert first.command_name == "insert" and first.doc["insert"] == "workflow_spans"
        assert first.doc["ordered"] is False
        assert documents(first) == [{"_id": f"{'ab' * 16}:{i:016x}", **span_doc(i)} for i in range(3)]
        first.ok(n=3)
        second = mockup_mongo.receives(timeout=10)  # the partial batch, after flush_interval_s
        assert [d["span_id"] for d in documents(second)] == [f"{i:016x}" for i in (3, 4)]
        second.ok(n=2)
        deadline = time.monotonic() + 10
        while sink.inserted < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.inserted == 5 and sink.dropped == 0
    finally:
        sink.close(timeout_s=2)


def test_failed_batch_is_retried_with_the_same_documents(mockup_mongo: MockupDB) -> None:
    sink = _sink(mockup_mongo, batch_size=10, flush_interval_s=0.1)
    sink.start()
    try:
        mockup_mongo.receives(timeout=10).ok()  # createIndexes
        sink.offer(span_doc(1))
        sink.offer(span_doc(2))
        req = mockup_mongo.receives(timeout=10)
        req.command_err(code=91, errmsg="shutdown in progress")
        retry = mockup_mongo.receives(timeout=10)
        assert retry.command_name == "insert" and documents(retry) == documents(req)
        retry.ok(n=2)
        assert sink.failed_batches == 1
    finally:
        sink.close(timeout_s=2)


async def test_full_queue_drops_spans_and_the_manifest_counts_them(
    tmp_path: Path, mockup_mongo: MockupDB
) -> None:
    # MockupDB never answers createIndexes here: the sink's worker is stuck, so its queue of 3 fills up.
    sink = _sink(mockup_mongo, queue_max=3)
    sink.start()
    f = Frames("mongo-drop")
    for i in range(10):
        f.span(10 * i, f"frame-{i}")
    f.end(200)
    try:
        async with running_recorder(tmp_path, sink=sink) as server:
            acks = await send_session(server.port, f.frames)
            assert acks[-1].finalized
    finally:
        sink.close(timeout_s=0.5)
    arc = load_archive(tmp_path / "archive" / "mongo-drop")
    counts = arc["manifest"]["counts"]
    assert counts["spans_dropped_sink"] == 7 and counts["spans_dropped"] == 7
    assert len(arc["spans"]) == 10  # the archive keeps every span


@pytest.mark.skipif(not REAL_MONGO_URI, reason="set RTVOICE_TEST_MONGO_URI to test against a real MongoDB")
def test_real_mongodb_gets_spans_and_indexes() -> None:
    assert REAL_MONGO_URI is not None
    db = f"rtvoice_test_{uuid.uuid4().hex[:8]}"
    sink = MongoSpanSink(REAL_MONGO_URI, db, batch_size=4, flush_interval_s=0.1)
    sink.start()
    try:
        for i in range(10):
            sink.offer(span_doc(i, session_id="real-1"))
        sink.offer(span_doc(3, session_id="real-1"))  # a resent span: idempotent
        deadline = time.monotonic() + 20
        while sink.inserted < 11 and time.monotonic() < deadline:
            time.sleep(0.05)
        coll = sink._client[db]["workflow_spans"]
        assert coll.count_documents({"session_id": "real-1"}) == 10
        names = {ix["name"] for ix in coll.list_indexes()}
        assert {"session_id_1", "start_unix_ns_1"} <= names
    finally:
        sink._client.drop_database(db)
        sink.close()
