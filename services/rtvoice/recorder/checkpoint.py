"""The session checkpoint: an append-only log of small records, one per fdatasync'ed batch.

Each record is a framed, CRC-checked payload (spool.frame_record) holding the state as compact JSON
(see SessionRecorder.snapshot).

Appending one record and ``fdatasync`` is the whole cost of a checkpoint (no open, rename or folder
sync per batch). The last record whose magic, length and CRC check out is the state; a torn tail
(power loss mid-append) is ignored and cut off on reopen. When the log grows past
:data:`COMPACT_BYTES` it is rewritten with only the latest record (temp file, fsync, rename, folder fsync).

Spools written before this format have ``state.json`` (one JSON document); it is read once and the next
checkpoint goes to the log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rtvoice.recorder.spool import (
    FILE_MODE,
    SpoolDamaged,
    frame_record,
    iter_records,
    write_all,
    write_file_atomic,
)

COMPACT_BYTES = 256 * 1024
_TRACK_KEYS = ("seg_start", "seg_in", "seg_in_rate", "seg_written", "extent")
_TOP_KEYS = ("durable_seq", "caller", "agent", "events_size", "spans_size", "counts", "book")


def encode_state(state: dict[str, Any]) -> bytes:
    """One log record for ``state`` (record header + compact JSON)."""
    return frame_record(json.dumps(state, separators=(",", ":")).encode())


def last_state(data: bytes) -> tuple[dict[str, Any] | None, int]:
    """(the last valid record's state or None, the byte length of the valid prefix) of a log's bytes."""
    end, last = 0, None
    for payload, stop in iter_records(data):
        try:
            last = json.loads(payload)
        except ValueError:
            break
        end = stop
    return last, end


def validate_state(state: Any) -> dict[str, Any]:
    """``state`` if it has every key a resume needs, with integer track fields; else :class:`SpoolDamaged`."""
    if not isinstance(state, dict):
        raise SpoolDamaged(f"checkpoint is a {type(state).__name__}, not an object")
    missing = [k for k in _TOP_KEYS if k not in state]
    for side in ("caller", "agent"):
        track = state.get(side, {}).get("track") if isinstance(state.get(side), dict) else None
        if not isinstance(track, dict):
            missing.append(f"{side}.track")
            continue
        missing += [f"{side}.track.{k}" for k in _TRACK_KEYS if not isinstance(track.get(k), int)]
    caller = state.get("caller")
    if isinstance(caller, dict) and not isinstance(caller.get("timeline"), dict):
        missing.append("caller.timeline")
    for k in ("durable_seq", "events_size", "spans_size"):
        if k in state and not isinstance(state[k], int):
            missing.append(f"{k} (not an integer)")
    if missing:
        raise SpoolDamaged(f"checkpoint lacks {', '.join(missing)}")
    return state


def load_checkpoint(folder: Path, log_name: str, legacy_name: str) -> dict[str, Any]:
    """The validated last checkpoint of a spool folder (the log, else a legacy ``state.json``).

    Raises :class:`SpoolDamaged` when neither holds a valid, complete state.
    """
    log_path, legacy = folder / log_name, folder / legacy_name
    if log_path.exists():
        try:
            data = log_path.read_bytes()
        except OSError as exc:
            raise SpoolDamaged(f"{log_name}: {exc}") from exc
        state, _ = last_state(data)
        if state is not None:
            return validate_state(state)
        if not legacy.exists():  # a legacy state.json stays valid until the first record lands
            raise SpoolDamaged(f"{log_name}: no valid record in {len(data)} bytes")
    try:
        return validate_state(json.loads(legacy.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise SpoolDamaged(f"{legacy_name}: {exc}") from exc


class CheckpointLog:
    """Appends checkpoint records to ``path`` (0600); :meth:`append` is blocking (fdatasync)."""

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        _, self.size = last_state(os.pread(self.fd, os.fstat(self.fd).st_size, 0))
        os.ftruncate(self.fd, self.size)  # drop a torn tail: the next record must follow a valid one

    def append(self, record: bytes) -> None:
        """Write one record (from :func:`encode_state`) and fdatasync it; raises ``OSError``.

        On failure the log is cut back to its last valid record, so a later append is readable.
        """
        if self.size + len(record) > COMPACT_BYTES:
            self._compact(record)
            return
        try:
            write_all(self.fd, record, self.size)
            if self.durable:
                os.fdatasync(self.fd)
        except OSError:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass  # the torn bytes fail their CRC on read; the reopen cuts them
            raise
        self.size += len(record)

    def _compact(self, record: bytes) -> None:
        write_file_atomic(self.path, record, FILE_MODE, durable=self.durable)
        old = self.fd
        self.fd = os.open(self.path, os.O_RDWR, FILE_MODE)
        self.size = len(record)
        os.close(old)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
