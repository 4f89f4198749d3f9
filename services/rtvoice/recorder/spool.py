"""The on-disk spool of one session: raw channels, append-only logs, the checkpointed state.

Layout of ``<spool dir>/<session id>/``::

    start.pb          RecordStart of the session (binary protobuf)
    state.json        checkpoint: durable seq, track cursors, log sizes, counters (atomic replace)
    caller.pcm        left channel, raw PCM16 LE mono 16000 Hz (see tracks.py)
    agent.pcm         right channel
    events.jsonl      one JSON object per non-audio event (transcripts, VAD, responses, errors, ...)
    spans.jsonl       one span document per line (Span.to_dict)
    archive/          the finished archive (audio.wav, transcript.json, spans.json, manifest.json)
    finalized.json    written last by finalize: the archive is complete and waits for upload

A session directory with ``finalized.json`` is pending upload; one with only ``state.json`` is a session
that was still running when its stream (or the recorder) stopped.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import IO, Any

from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.v1 import recorder_pb2 as rpb

_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")

STATE = "state.json"
START = "start.pb"
CALLER = "caller.pcm"
AGENT = "agent.pcm"
EVENTS = "events.jsonl"
SPANS = "spans.jsonl"
ARCHIVE = "archive"
FINALIZED = "finalized.json"


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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(tmp, path)


class JsonLog:
    """An append-only JSON-lines file whose size is checkpointed; reopening truncates to that size."""

    def __init__(self, path: Path, size: int = 0) -> None:
        self.path = path
        with open(path, "ab"):
            pass
        os.truncate(path, size)
        self._f: IO[bytes] = open(path, "ab", buffering=0)
        self.size = size

    def append(self, obj: dict[str, Any]) -> None:
        """Append one object as a JSON line (written through to the OS at once)."""
        line = (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        self._f.write(line)
        self.size += len(line)

    def close(self) -> None:
        """Close the file."""
        self._f.close()


def read_jsonl(path: Path) -> Any:
    """Yield the objects of a JSON-lines file one by one (streaming; skips a torn last line)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                yield json.loads(line)


class SessionSpool:
    """Paths and small files of one session's spool directory."""

    def __init__(self, root: Path, session_id: str) -> None:
        self.session_id = check_session_id(session_id)
        self.dir = root / session_id

    def path(self, name: str) -> Path:
        """The path of one spool file (``state.json``, ``caller.pcm``, ...)."""
        return self.dir / name

    @property
    def archive_dir(self) -> Path:
        """The folder finalize writes the archive into."""
        return self.dir / ARCHIVE

    def exists(self) -> bool:
        """True when the session has a checkpoint (it was started here)."""
        return self.path(STATE).exists()

    def is_finalized(self) -> bool:
        """True when the archive is complete and waits for upload."""
        return self.path(FINALIZED).exists()

    def create(self, start: rpb.RecordStart) -> None:
        """Create the directory and store the session's RecordStart."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(START + ".tmp")
        tmp.write_bytes(start.SerializeToString())
        os.replace(tmp, self.path(START))

    def load_start(self) -> rpb.RecordStart:
        """The RecordStart stored by :meth:`create`."""
        return rpb.RecordStart.FromString(self.path(START).read_bytes())

    def load_state(self) -> dict[str, Any]:
        """The last checkpoint (see ``SessionRecorder.checkpoint``)."""
        data: dict[str, Any] = json.loads(self.path(STATE).read_text(encoding="utf-8"))
        return data

    def save_state(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint atomically."""
        write_json_atomic(self.path(STATE), state)

    def load_finalized(self) -> dict[str, Any]:
        """The finalized record (session id, agent, start time, files with sha256)."""
        data: dict[str, Any] = json.loads(self.path(FINALIZED).read_text(encoding="utf-8"))
        return data


def scan_spool(root: Path) -> tuple[list[SessionSpool], list[SessionSpool]]:
    """The spool's sessions: (finalized ones waiting for upload, unfinished ones), each sorted by name."""
    finalized: list[SessionSpool] = []
    unfinished: list[SessionSpool] = []
    if not root.is_dir():
        return finalized, unfinished
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not _SESSION_ID.match(entry.name):
            continue
        spool = SessionSpool(root, entry.name)
        if spool.is_finalized():
            finalized.append(spool)
        elif spool.exists():
            unfinished.append(spool)
    return finalized, unfinished
