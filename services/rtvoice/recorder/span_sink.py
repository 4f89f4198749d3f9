"""Spans to MongoDB ``workflow_spans`` through ``pymongo``, off the event loop.

Session handling calls :meth:`MongoSpanSink.offer` (non-blocking; a bounded ``queue.Queue``); one worker
thread creates the indexes at start-up, then drains the queue in batches with ``insert_many``. When the
queue is full, ``offer`` returns False and the span is dropped (the session counts it and the count lands
in the manifest). A failed batch is retried with backoff while new spans queue up behind it.

Each document is ``rtvoice.core.spans.Span.to_dict`` plus ``_id = "<trace id>:<span id>"``, so a batch
resent after a lost reply is idempotent (duplicate-key errors are ignored).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING, IndexModel, MongoClient
from pymongo.errors import BulkWriteError, PyMongoError

from rtvoice.core.retry import Backoff

log = logging.getLogger(__name__)
COLLECTION = "workflow_spans"
INDEXES = [
    IndexModel([("session_id", ASCENDING)], name="session_id_1"),
    IndexModel([("start_unix_ns", ASCENDING)], name="start_unix_ns_1"),
]
_DUPLICATE_KEY = 11000


class MongoSpanSink:
    """Batches span documents into ``<db>.workflow_spans``.

    ``queue_max`` bounds the spans waiting in memory; ``batch_size`` caps one ``insert_many``;
    ``flush_interval_s`` is how long a partial batch may wait. Counters: ``inserted``, ``dropped``,
    ``failed_batches``. Call :meth:`start` once and :meth:`close` (blocking, bounded) at shutdown.
    """

    def __init__(
        self,
        uri: str,
        db: str = "rtvoice",
        collection: str = COLLECTION,
        *,
        queue_max: int = 10_000,
        batch_size: int = 100,
        flush_interval_s: float = 0.2,
        retry_max_s: float = 10.0,
        server_selection_timeout_ms: int = 5000,
    ) -> None:
        self.uri = uri
        self.db_name = db
        self.collection_name = collection
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_max_s = retry_max_s
        self._backoff = Backoff(initial_s=min(0.2, retry_max_s), max_s=retry_max_s)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=queue_max)
        self._stop = threading.Event()
        self._client: MongoClient[dict[str, Any]] = MongoClient(
            uri, serverSelectionTimeoutMS=server_selection_timeout_ms, connect=False
        )
        self._thread = threading.Thread(target=self._run, name="mongo-span-sink", daemon=True)
        self.inserted = 0
        self.dropped = 0
        self.failed_batches = 0
        self.indexes_ready = threading.Event()

    def start(self) -> None:
        """Start the worker thread (which creates the indexes first)."""
        self._thread.start()

    def offer(self, doc: dict[str, Any]) -> bool:
        """Queue one span document without blocking; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(doc)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued (bounded by ``timeout_s``), stop the thread, close the client. Blocking."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("span sink: %d spans not written to MongoDB at shutdown", self._queue.qsize())
        self._client.close()

    # ------------------------------------------------------------------------------- worker thread

    def _collection(self) -> Any:
        return self._client[self.db_name][self.collection_name]

    def _run(self) -> None:
        self._retrying(self._create_indexes)
        while True:
            batch = self._next_batch()
            if batch:
                self._retrying(functools.partial(self._insert, batch))
            elif self._stop.is_set():
                return

    def _create_indexes(self) -> None:
        self._collection().create_indexes(INDEXES)
        self.indexes_ready.set()

    def _next_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_interval_s
        while len(batch) < self.batch_size:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=timeout))
            except queue.Empty:
                break
            if self._stop.is_set() and self._queue.empty():
                break
        return batch

    def _insert(self, batch: list[dict[str, Any]]) -> None:
        docs = [{"_id": f"{d['trace_id']}:{d['span_id']}", **d} for d in batch]
        try:
            self._collection().insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
                raise
        self.inserted += len(docs)

    def _retrying(self, op: Callable[[], None]) -> None:
        """Run ``op`` until it succeeds, backing off on errors; gives up only when stopping."""
        backoff = self._backoff.start()
        while True:
            try:
                op()
                return
            except PyMongoError as exc:
                self.failed_batches += 1
                log.warning("span sink: MongoDB error (%s); retrying (attempt %d)", exc, backoff.attempts + 1)
            if not backoff.wait(self._stop):
                # Stopping: one last attempt, in case the server came back.
                try:
                    op()
                except PyMongoError:
                    log.warning("span sink: giving up on a batch at shutdown")
                return
