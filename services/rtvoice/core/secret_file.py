"""A secret kept in a file and re-read when the file changes (a rotated Kubernetes Secret volume).

The kubelet updates a mounted Secret by swapping a symlink, so the path keeps its name while the file
behind it changes; :class:`SecretFile` notices through ``os.stat`` (inode, mtime, size), checked at most
every ``check_interval_s``, and serves the new value from then on. Nothing is cached across processes.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


class SecretFileError(ValueError):
    """The secret file is missing, unreadable or empty; the message names the file, never the value."""


class SecretFile:
    """The text of ``path`` (UTF-8, surrounding whitespace stripped), re-read when the file changes.

    :meth:`value` raises :class:`SecretFileError` when the file cannot be read or is empty. When a
    later re-read fails (the file is being replaced), the last good value stays in use and the error is
    kept in :attr:`last_error`. Thread-safe (the metrics thread never reads secrets, but gRPC
    interceptors may run on any thread).
    """

    def __init__(self, path: str | os.PathLike[str], check_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value: str | None = None
        self._checked_at = float("-inf")
        self.reloads = 0

    def value(self) -> str:
        """The current secret; raises :class:`SecretFileError` when no good value was ever read."""
        now = time.monotonic()
        with self._lock:
            if self._value is None or now - self._checked_at >= self.check_interval_s:
                self._checked_at = now
                self._refresh()
            if self._value is None:
                raise SecretFileError(self.last_error or f"secret file {self.path} is empty")
            return self._value

    def lines(self) -> list[str]:
        """The non-empty lines of the secret (a file may hold several values, e.g. during a rotation)."""
        return [line.strip() for line in self.value().splitlines() if line.strip()]

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp and self._value is not None:
                return
            text = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            self.last_error = f"cannot read secret file {self.path}: {getattr(err, 'strerror', None) or err}"
            return
        if not text:
            self.last_error = f"secret file {self.path} is empty"
            return
        if self._value is not None and text != self._value:
            self.reloads += 1
        self._stamp, self._value, self.last_error = stamp, text, None
