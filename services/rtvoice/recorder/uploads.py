"""Finalized archives from the spool to the store: retried until the store confirms, then the spool copy
is deleted (never before). One task per archive; the finalized ack may wait for the first attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Coroutine
from typing import Any

from rtvoice.core.metrics import service_metrics
from rtvoice.core.retry import Backoff
from rtvoice.recorder.spool import SessionSpool
from rtvoice.recorder.stores import ArchiveRecord, ArchiveStore, StoreError

log = logging.getLogger(__name__)


class UploadQueue:
    """Uploads of finalized spool entries to ``store`` under the ``backoff`` policy.

    ``spawn`` starts a background task (the service's, so shutdown cancels it). ``tasks`` maps archive
    names (``<id>``, ``<id>.part<n>``) to their running upload.
    """

    def __init__(
        self,
        store: ArchiveStore,
        backoff: Backoff,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self.store = store
        self.backoff = backoff
        self._spawn = spawn
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._first_attempt: dict[str, asyncio.Event] = {}

    @property
    def pending(self) -> list[str]:
        """Archive names waiting for the store, sorted."""
        return sorted(self.tasks)

    def submit(self, spool: SessionSpool) -> None:
        """Start uploading ``spool``'s archive (a no-op when it is already under way)."""
        if spool.name not in self.tasks:
            self._first_attempt[spool.name] = asyncio.Event()
            self.tasks[spool.name] = self._spawn(self._upload(spool))

    async def wait_first_attempt(self, name: str, timeout_s: float) -> None:
        """Return once the first upload attempt of ``name`` finished (or ``timeout_s`` passed)."""
        tried = self._first_attempt.get(name)
        if tried is not None and timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tried.wait(), timeout_s)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no upload is pending (tests, graceful exit); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.tasks:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.wait(list(self.tasks.values()), timeout=left)
        return True

    async def _upload(self, spool: SessionSpool) -> None:
        try:
            rec = ArchiveRecord.from_dict(await asyncio.to_thread(spool.load_finalized))
            backoff = self.backoff.start()
            while True:
                try:
                    uri = await asyncio.to_thread(self.store.put, spool.archive_dir, rec)
                    break
                except StoreError as exc:
                    service_metrics("recorder").error("store")
                    delay = backoff.next_delay_s() or self.backoff.max_s
                    log.warning("session %s: %s; retrying in %.1f s", rec.name, exc, delay)
                    self._first_attempt[spool.name].set()  # the finalized ack need not wait longer
                await asyncio.sleep(delay)
            # Stored and confirmed by the store: only now the spool copy goes, before the finalized ack.
            await asyncio.to_thread(shutil.rmtree, spool.dir)
            log.info("session %s stored at %s", rec.name, uri)
        finally:
            self.tasks.pop(spool.name, None)
            attempted = self._first_attempt.pop(spool.name, None)
            if attempted is not None:
                attempted.set()
