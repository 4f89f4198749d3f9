"""Read archives back (for ``rtvoice sessions``): from the local archive folder or an S3-compatible store.

Both sources give the same shapes: ``manifests()`` → every ``manifest.json`` as a dict (one per archive
part), and ``load(id)`` → the parts of one session as [(manifest, transcript), ...] ordered by part,
accepting a unique prefix of the id. A session recorded by two recorders has folders ``<id>`` and
``<id>.part2`` (spool.part_name); both belong to session ``<id>``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from minio.error import MinioException
from urllib3.exceptions import HTTPError

from rtvoice.core.errors import RealtimeProtocolError
from rtvoice.recorder.archive import MANIFEST, TRANSCRIPT
from rtvoice.recorder.s3 import S3Options
from rtvoice.recorder.spool import SessionSpool

Part = tuple[dict[str, Any], dict[str, Any]]

log = logging.getLogger(__name__)


class ArchiveReadError(Exception):
    """The archive cannot be read (store unreachable, unreadable folder); the message says where."""


class AmbiguousSessionId(Exception):
    """A session id prefix matches more than one session; ``matches`` lists them."""

    def __init__(self, prefix: str, matches: list[str]) -> None:
        super().__init__(f"{prefix!r} matches {len(matches)} sessions: {', '.join(sorted(matches)[:10])}")
        self.matches = matches


class ArchiveSource(Protocol):
    """Where ``rtvoice sessions`` reads archives from."""

    description: str

    def manifests(self) -> list[dict[str, Any]]:
        """Every archived session's manifest. Raises :class:`ArchiveReadError`."""
        ...

    def load(self, session_id: str) -> list[Part] | None:
        """The parts [(manifest, transcript), ...] of the session with this id or unique id prefix,
        ordered by part; None when unknown. Raises :class:`ArchiveReadError` or :class:`AmbiguousSessionId`.
        """
        ...


def _session_of(name: str) -> str:
    """The session id of an archive folder name (``<id>`` or ``<id>.part<n>``)."""
    try:
        return SessionSpool.from_name(Path("."), name).session_id
    except RealtimeProtocolError:
        return name


def _pick(session_id: str, names: list[str]) -> list[str]:
    """The archive names of the session ``session_id`` names (exactly, or as a unique prefix)."""
    by_session: dict[str, list[str]] = {}
    for n in names:
        by_session.setdefault(_session_of(n), []).append(n)
    if session_id not in by_session:
        matches = [sid for sid in by_session if sid.startswith(session_id)]
        if len(matches) > 1:
            raise AmbiguousSessionId(session_id, matches)
        if not matches:
            return []
        session_id = matches[0]
    return sorted(by_session[session_id], key=lambda n: SessionSpool.from_name(Path("."), n).part)


class LocalArchive:
    """Archives as folders ``<root>/<session id>/`` (what ``LocalStore`` writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"archive folder {root}"

    def _ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.parent.name for p in self.root.glob(f"*/{MANIFEST}") if not p.parent.name.startswith(".")
        )

    def manifests(self) -> list[dict[str, Any]]:
        """Every ``<root>/*/manifest.json`` (unreadable ones are skipped with a warning)."""
        out = []
        for sid in self._ids():
            try:
                out.append(json.loads((self.root / sid / MANIFEST).read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                log.warning("skipping %s: %s", self.root / sid / MANIFEST, exc)
        return out

    def load(self, session_id: str) -> list[Part] | None:
        """The parts of one session (folders ``<id>``, ``<id>.part<n>``); see :class:`ArchiveSource`."""
        names = _pick(session_id, self._ids())
        parts = []
        for name in names:
            try:
                manifest = json.loads((self.root / name / MANIFEST).read_text(encoding="utf-8"))
                transcript = json.loads((self.root / name / TRANSCRIPT).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ArchiveReadError(f"cannot read session {name} in {self.root}: {exc}") from exc
            parts.append((manifest, transcript))
        return parts or None


class S3Archive:
    """Archives as objects ``<prefix>/<agent>/<yyyy>/<mm>/<dd>/<session id>/<file>`` (``S3Store``)."""

    def __init__(self, options: S3Options) -> None:
        self.options = options
        self.client = options.client(retries=1, timeout_s=15.0)
        self.description = f"s3://{options.bucket}/{options.prefix}"

    def _manifest_keys(self) -> dict[str, str]:
        prefix = self.options.prefix + "/" if self.options.prefix else None
        try:
            objects = self.client.list_objects(self.options.bucket, prefix=prefix, recursive=True)
            keys = [
                o.object_name for o in objects if o.object_name and o.object_name.endswith("/" + MANIFEST)
            ]
        except (MinioException, HTTPError, OSError) as exc:
            raise ArchiveReadError(f"cannot list {self.description}: {exc}") from exc
        return {key.rsplit("/", 2)[-2]: key for key in keys}

    def _get_json(self, key: str) -> Any:
        try:
            resp = self.client.get_object(self.options.bucket, key)
            try:
                return json.loads(resp.read())
            finally:
                resp.close()
                resp.release_conn()
        except (MinioException, HTTPError, OSError, ValueError) as exc:
            raise ArchiveReadError(f"cannot read s3://{self.options.bucket}/{key}: {exc}") from exc

    def manifests(self) -> list[dict[str, Any]]:
        """Every ``manifest.json`` object under the prefix."""
        return [self._get_json(key) for key in self._manifest_keys().values()]

    def load(self, session_id: str) -> list[Part] | None:
        """The parts of one session's objects; see :class:`ArchiveSource`."""
        keys = self._manifest_keys()
        parts = []
        for name in _pick(session_id, sorted(keys)):
            key = keys[name]
            folder = key[: -len(MANIFEST)]
            parts.append((self._get_json(key), self._get_json(folder + TRANSCRIPT)))
        return parts or None
