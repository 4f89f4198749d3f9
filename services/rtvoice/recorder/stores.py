"""Where finished archives go: a local directory (the embedded default) or an S3-compatible store.

``put`` is blocking (run it in a worker thread), idempotent, and returns only once the store has
confirmed every file (local: sizes after an atomic rename; S3: ``stat_object`` size and the sha256 we
attach as user metadata). Any failure raises :class:`StoreError`; the caller keeps the spool copy and
retries later.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from minio.error import MinioException
from urllib3.exceptions import HTTPError

from rtvoice.recorder.archive import MANIFEST, SPANS_FILE
from rtvoice.recorder.s3 import S3Options
from rtvoice.recorder.spool import make_private_dir

log = logging.getLogger(__name__)
SHA256_META = "sha256"


class StoreError(Exception):
    """The store did not take (or confirm) an archive; retry later."""


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """A finalized archive waiting in the spool: its files (name, size, sha256) and naming facts.

    ``name`` is the archive's folder/object name: the session id for part 1, ``<id>.part<n>`` after.
    """

    session_id: str
    agent: str
    started_unix_ns: int
    files: list[dict[str, Any]]
    name: str = ""
    part: int = 1

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchiveRecord:
        """From the ``finalized.json`` document (older ones lack ``name``/``part``: part 1)."""
        sid = d["session_id"]
        return cls(sid, d["agent"], d["started_unix_ns"], d["files"], d.get("name") or sid, d.get("part", 1))


@dataclass(frozen=True, slots=True)
class ArchiveMode:
    """Permissions of local archive folders: ``dir_mode`` for folders, files get its read/write bits.

    The default 0700 keeps archives owner-only; e.g. 0750 with ``group`` lets one group read them.
    ``group`` is a group name or numeric id (None: keep the recorder's group). Raises ``ValueError`` for
    a mode with bits outside 0o777 or an unknown group.
    """

    dir_mode: int = 0o700
    group: str | None = None

    def __post_init__(self) -> None:
        if self.dir_mode & ~0o777 or (self.dir_mode & 0o700) != 0o700:
            raise ValueError(f"archive mode {self.dir_mode:#o}: must be within 0777 and owner rwx")
        if self.group is not None:
            self.gid()

    @property
    def file_mode(self) -> int:
        """The folder mode without execute bits (0700 -> 0600, 0750 -> 0640)."""
        return self.dir_mode & 0o666

    def gid(self) -> int:
        """The numeric group id, or -1 to leave the group as it is."""
        if self.group is None:
            return -1
        if self.group.isdigit():
            return int(self.group)
        import grp

        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise ValueError(f"unknown group {self.group!r}") from None

    def apply(self, folder: Path) -> None:
        """Set the modes (and group) on ``folder`` and every file in it; raises ``OSError``."""
        gid = self.gid()
        os.chmod(folder, self.dir_mode)
        if gid >= 0:
            os.chown(folder, -1, gid)
        for p in folder.iterdir():
            os.chmod(p, self.dir_mode if p.is_dir() else self.file_mode)
            if gid >= 0:
                os.chown(p, -1, gid)


class ArchiveStore(Protocol):
    """An archive destination."""

    def uri_for(self, rec: ArchiveRecord) -> str:
        """Where the archive of ``rec`` lives (or will live once uploaded)."""
        ...

    def put(self, folder: Path, rec: ArchiveRecord) -> str:
        """Store the files of ``folder``; returns the archive URI. Raises :class:`StoreError`."""
        ...


class LocalStore:
    """Archives as folders ``<root>/<name>/`` (copied, then renamed into place atomically).

    ``<name>`` is the session id (``<id>.part<n>`` for later parts, see :class:`ArchiveRecord`); folders
    and files get ``mode`` (default owner-only 0700/0600).
    """

    def __init__(self, root: Path, mode: ArchiveMode | None = None) -> None:
        self.root = root.resolve()
        self.mode = mode or ArchiveMode()

    def uri_for(self, rec: ArchiveRecord) -> str:
        """``file:///<root>/<name>``."""
        return (self.root / rec.name).as_uri()

    def put(self, folder: Path, rec: ArchiveRecord) -> str:
        """Move (same file system) or copy ``folder`` to ``<root>/<name>``; idempotent after a crash."""
        dest = self.root / rec.name
        tmp = self.root / f".incoming-{rec.name}"
        try:
            make_private_dir(self.root, self.mode.dir_mode)
            if folder.exists():
                if tmp.exists():
                    shutil.rmtree(tmp)
                try:
                    folder.rename(tmp)  # instant on the same file system
                except OSError:
                    shutil.copytree(folder, tmp)
            elif not tmp.exists():  # moved into place by an attempt that crashed before cleaning up
                self._verify(dest, rec)
                return dest.as_uri()
            self._verify(tmp, rec)
            self.mode.apply(tmp)
            if dest.exists():
                shutil.rmtree(dest)
            tmp.rename(dest)
        except OSError as exc:
            raise StoreError(f"cannot write {dest}: {exc}") from exc
        return dest.as_uri()

    @staticmethod
    def _verify(where: Path, rec: ArchiveRecord) -> None:
        for f in rec.files:
            size = (where / f["name"]).stat().st_size
            if size != f["size"]:
                raise StoreError(f"{where / f['name']}: {size} bytes, expected {f['size']}")


class S3Store:
    """Archives as objects ``<prefix>/<agent>/<yyyy>/<mm>/<dd>/<session id>/<file>`` in one bucket.

    Files larger than ``part_size`` (>= 5 MiB) go up as multipart uploads; ``manifest.json`` is uploaded
    last, so a reader that finds a manifest finds a complete archive.
    """

    def __init__(self, options: S3Options) -> None:
        self.options = options
        self.client = options.client()

    def uri_for(self, rec: ArchiveRecord) -> str:
        """``s3://<bucket>/<prefix>/<agent>/<yyyy>/<mm>/<dd>/<session id>/``."""
        return self.options.uri(self._folder(rec) + "/")

    def _folder(self, rec: ArchiveRecord) -> str:
        return self.options.folder_key(rec.agent, rec.started_unix_ns, rec.name)

    def put(self, folder: Path, rec: ArchiveRecord) -> str:
        """Upload every file (skipping ones already confirmed), manifest last; verify each by stat."""
        opts = self.options
        base = self._folder(rec)
        files = sorted(rec.files, key=lambda f: f["name"] == MANIFEST)
        try:
            if opts.create_bucket and not self.client.bucket_exists(opts.bucket):
                self.client.make_bucket(opts.bucket, location=opts.region)
            for f in files:
                key = f"{base}/{f['name']}"
                if self._confirmed(key, f):
                    continue
                self.client.fput_object(
                    opts.bucket,
                    key,
                    str(folder / f["name"]),
                    content_type=_content_type(f["name"]),
                    metadata={SHA256_META: f["sha256"]},
                    part_size=opts.part_size,
                )
                if not self._confirmed(key, f):
                    raise StoreError(f"s3://{opts.bucket}/{key}: the store does not confirm the upload")
        except (MinioException, HTTPError, OSError, ValueError) as exc:
            raise StoreError(f"upload to s3://{opts.bucket}/{base}/ failed: {exc}") from exc
        return opts.uri(base + "/")

    def _confirmed(self, key: str, f: dict[str, Any]) -> bool:
        """True when the object exists with our size and sha256 metadata."""
        try:
            st = self.client.stat_object(self.options.bucket, key)
        except MinioException as exc:
            if getattr(exc, "code", "") in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise
        meta = st.metadata or {}
        sha = meta.get("x-amz-meta-" + SHA256_META) or meta.get("X-Amz-Meta-" + SHA256_META.title())
        ok = st.size == f["size"] and sha == f["sha256"]
        if not ok:
            log.warning("s3 object %s differs: size %s sha256 %s", key, st.size, sha)
        return ok


def _content_type(name: str) -> str:
    if name == SPANS_FILE:
        return "application/x-ndjson"
    if name.endswith(".wav"):
        return "audio/wav"
    if name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"
