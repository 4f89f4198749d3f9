"""The on-disk spool of one session: raw channels, append-only logs, the checkpoint; durable file helpers.

Layout of ``<spool dir>/<name>/`` (``name`` is the session id, ``<session id>.part<n>`` for part n >= 2)::

    start.pb          RecordStart of the session (binary protobuf in one frame_record), fsynced
    checkpoint.log    append-only checkpoint records (checkpoint.py); the last valid one counts
    caller.pcm        left channel, raw PCM16 LE mono 16000 Hz (see tracks.py)
    agent.pcm         right channel
    events.jsonl      one JSON object per non-audio event (transcripts, VAD, responses, errors, ...)
    spans.jsonl       one span document per line (Span.to_dict)
    archive/          the finished archive (audio.wav, transcript.json, spans.json, manifest.json)
    finalized.json    written last by finalize: the archive is complete and waits for upload

A directory with ``finalized.json`` is pending upload; one with a checkpoint is a session that was still
running when its stream (or the recorder) stopped. Entries that cannot be read are moved to
``<spool dir>/_quarantine/`` (quarantine.py), never truncated or deleted. Every file and folder is
created owner-only (0600 / 0700).
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from google.protobuf.message import DecodeError

from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.v1 import recorder_pb2 as rpb

_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")

LEGACY_STATE = "state.json"
CHECKPOINT = "checkpoint.log"
START = "start.pb"
CALLER = "caller.pcm"
AGENT = "agent.pcm"
EVENTS = "events.jsonl"
SPANS = "spans.jsonl"
ARCHIVE = "archive"
FINALIZED = "finalized.json"
QUARANTINE = "_quarantine"  # cannot be a session id: those start with a letter or digit
FILE_MODE = 0o600
DIR_MODE = 0o700
_FINALIZED_KEYS = ("session_id", "agent", "started_unix_ns", "files")


RECORD_MAGIC = b"RVC1"
_RECORD_HEADER = struct.Struct("<4sII")
_MAX_RECORD = 16 * 1024 * 1024


def frame_record(payload: bytes) -> bytes:
    """A self-checking record: magic ``RVC1``, uint32 LE length, uint32 LE crc32 of the payload, payload."""
    return _RECORD_HEADER.pack(RECORD_MAGIC, len(payload), zlib.crc32(payload)) + payload


def iter_records(data: bytes) -> Iterator[tuple[bytes, int]]:
    """(payload, end offset) of each valid record from the start of ``data``; stops at the first bad one."""
    pos = 0
    while pos + _RECORD_HEADER.size <= len(data):
        magic, length, crc = _RECORD_HEADER.unpack_from(data, pos)
        end = pos + _RECORD_HEADER.size + length
        if magic != RECORD_MAGIC or length > _MAX_RECORD or end > len(data):
            return
        payload = data[pos + _RECORD_HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return
        yield payload, end
        pos = end


class SpoolDamaged(Exception):
    """A spool entry cannot be read back (truncated, garbage, missing keys); the message says what."""


def check_session_id(session_id: str) -> str:
    """Return ``session_id`` if it is safe as a directory and object-key name.

    Raises ``RealtimeProtocolError`` (code ``bad_session_id``) otherwise: 1-128 chars of
    ``[A-Za-z0-9._-]`` starting with a letter or digit.
    """
    if not _SESSION_ID.match(session_id):
        raise RealtimeProtocolError(
            f"session id {session_id[:80]!r} must be 1-128 characters of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit",
            code="bad_session_id",
        )
    return session_id


def part_name(session_id: str, part: int) -> str:
    """The spool/archive folder name of one archive part: the id for part 0/1, ``<id>.part<n>`` after."""
    return session_id if part <= 1 else f"{session_id}.part{part}"


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``os.pwrite`` all of ``data`` at ``offset``, retrying short writes; raises ``OSError`` on failure.

    A write that makes no progress raises ``OSError(EIO)``; ``ENOSPC``/``EIO`` from the OS propagate.
    """
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(5, f"pwrite made no progress at offset {offset}")
        view = view[n:]
        offset += n


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or create inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, mode: int = FILE_MODE, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a ``mode`` temp file and rename (never half-written).

    ``durable``: fsync the file before and the folder after the rename. Raises ``OSError``.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an older temp file may have had other bits
        write_all(fd, data, 0)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def write_json_atomic(path: Path, data: Any, mode: int = FILE_MODE) -> None:
    """Write ``data`` as compact JSON to ``path`` atomically and durably (see :func:`write_file_atomic`)."""
    write_file_atomic(path, json.dumps(data, separators=(",", ":")).encode(), mode)


def make_private_dir(path: Path, mode: int = DIR_MODE) -> None:
    """``mkdir -p`` whose new folders get ``mode`` (not the umask's default)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode)
        except FileExistsError:
            continue
        os.chmod(d, mode)


class JsonLog:
    """An append-only JSON-lines file whose size is checkpointed; reopening truncates to that size."""

    def __init__(self, path: Path, size: int = 0) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        os.ftruncate(self.fd, size)
        self.size = size
        self._synced_size = -1  # the truncate is not synced yet

    def sync(self) -> None:
        """``fdatasync`` the file if it grew since the last sync (blocking; raises ``OSError``)."""
        if self.fd >= 0 and self.size != self._synced_size:
            os.fdatasync(self.fd)
            self._synced_size = self.size

    def append(self, obj: dict[str, Any]) -> None:
        """Append one object as a JSON line (written through to the OS at once; raises ``OSError``)."""
        line = (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        write_all(self.fd, line, self.size)
        self.size += len(line)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_jsonl(path: Path) -> Any:
    """Yield the objects of a JSON-lines file one by one (streaming; skips a torn last line)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                yield json.loads(line)


class SessionSpool:
    """Paths and small files of one session part's spool directory (``name`` = :func:`part_name`)."""

    def __init__(self, root: Path, session_id: str, part: int = 1) -> None:
        self.session_id = check_session_id(session_id)
        self.part = max(1, part)
        self.root = root
        self.name = part_name(session_id, self.part)
        self.dir = root / self.name

    @classmethod
    def from_name(cls, root: Path, name: str) -> SessionSpool:
        """The spool of folder ``name`` (``<id>`` or ``<id>.part<n>``)."""
        m = re.match(r"^(.*)\.part([0-9]+)$", name)
        if m and int(m.group(2)) >= 2:
            return cls(root, m.group(1), int(m.group(2)))
        return cls(root, name)

    def path(self, name: str) -> Path:
        """The path of one spool file (``checkpoint.log``, ``caller.pcm``, ...)."""
        return self.dir / name

    @property
    def archive_dir(self) -> Path:
        """The folder finalize writes the archive into."""
        return self.dir / ARCHIVE

    def exists(self) -> bool:
        """True when the session has a checkpoint (it was started here)."""
        return self.path(CHECKPOINT).exists() or self.path(LEGACY_STATE).exists()

    def is_finalized(self) -> bool:
        """True when the archive is complete and waits for upload."""
        return self.path(FINALIZED).exists()

    def create(self, start: rpb.RecordStart) -> None:
        """Create the directory (0700) and store the session's RecordStart durably. Raises ``OSError``."""
        make_private_dir(self.dir)
        write_file_atomic(self.path(START), frame_record(start.SerializeToString()))

    def load_start(self) -> rpb.RecordStart:
        """The RecordStart stored by :meth:`create`; raises :class:`SpoolDamaged` when unreadable."""
        try:
            data = self.path(START).read_bytes()
            if data.startswith(RECORD_MAGIC):
                records = list(iter_records(data))
                if len(records) != 1 or records[0][1] != len(data):
                    raise SpoolDamaged(f"{START}: truncated or corrupt ({len(data)} bytes)")
                data = records[0][0]
            start = rpb.RecordStart.FromString(data)  # spools from before the framing: raw protobuf
        except (OSError, DecodeError) as exc:
            raise SpoolDamaged(f"{START}: {exc}") from exc
        if start.session.session_id != self.session_id:
            raise SpoolDamaged(
                f"{START}: names session {start.session.session_id[:80]!r}, not {self.session_id!r}"
            )
        return start

    def load_finalized(self) -> dict[str, Any]:
        """The finalized record (session id, agent, start time, files with sha256).

        Raises :class:`SpoolDamaged` when the file is unreadable or lacks a key.
        """
        try:
            data = json.loads(self.path(FINALIZED).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SpoolDamaged(f"{FINALIZED}: {exc}") from exc
        missing = [k for k in _FINALIZED_KEYS if not isinstance(data, dict) or k not in data]
        if missing:
            raise SpoolDamaged(f"{FINALIZED}: missing {', '.join(missing)}")
        return dict(data)


def open_text(path: Path) -> IO[str]:
    """Open ``path`` for writing text, owner-only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return os.fdopen(fd, "w", encoding="utf-8")


def scan_spool(root: Path) -> tuple[list[SessionSpool], list[SessionSpool], list[SessionSpool]]:
    """The spool's entries: (finalized ones waiting for upload, unfinished ones, ones with neither).

    Each list is sorted by folder name; the quarantine folder and foreign names are skipped. An entry with
    neither a checkpoint nor ``finalized.json`` (e.g. a crash between mkdir and the first checkpoint)
    is reported in the third list so the caller can quarantine it.
    """
    finalized: list[SessionSpool] = []
    unfinished: list[SessionSpool] = []
    other: list[SessionSpool] = []
    if not root.is_dir():
        return finalized, unfinished, other
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not _SESSION_ID.match(entry.name):
            continue
        spool = SessionSpool.from_name(root, entry.name)
        if spool.is_finalized():
            finalized.append(spool)
        elif spool.exists():
            unfinished.append(spool)
        else:
            other.append(spool)
    return finalized, unfinished, other
