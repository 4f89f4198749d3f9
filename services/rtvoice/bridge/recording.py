"""What a session does when its recording fails: the bridge side of ``RecordAck.error``.

The recorder answers a spool it cannot write (disk full, write error) with ``RecordAck.error``; the
session's ``RecorderLink`` calls :func:`recording_failed_handler`'s result once per episode, on the event
loop. The caller then gets a ``recording_failed`` error (kind ``ERROR_KIND_RECORDING``): non-fatal by
default, the call goes on and the recorder stores frames again once space returns (the archive says
``complete: false`` and counts what is missing). With ``recording.required: true`` in the agent settings
the error is fatal and the session ends with ``END_REASON_RECORDING_FAILED``. See docs/recording.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from rtvoice.core.errors import RealtimeRecordingError
from rtvoice.v1 import frames_pb2 as pb


class _Session(Protocol):
    async def report(self, err: RealtimeRecordingError) -> None: ...
    def shutdown(self, err: RealtimeRecordingError | None, reason: pb.EndReason) -> None: ...


_REPORTS: set[asyncio.Task[Any]] = set()  # keeps report tasks alive until they ran


def recording_failed_handler(session: _Session, required: bool) -> Callable[[pb.ErrorFrame], None]:
    """``RecorderLink.on_error`` for ``session`` (called on the loop): reports the recorder's error to the
    caller (and as an error span); when ``required``, ends the session with
    ``END_REASON_RECORDING_FAILED`` after a fatal ``recording_failed`` error."""

    def on_error(frame: pb.ErrorFrame) -> None:
        detail = f"recording failed ({frame.code or 'recording_failed'}): {frame.message}".rstrip(": ")
        err = RealtimeRecordingError(detail, code="recording_failed", retryable=True, fatal=required)
        if required:
            session.shutdown(err, pb.END_REASON_RECORDING_FAILED)
        else:
            task = asyncio.get_running_loop().create_task(session.report(err))
            _REPORTS.add(task)
            task.add_done_callback(_REPORTS.discard)

    return on_error
