"""Spool entries that cannot be read back are moved aside, never truncated or deleted.

``<spool dir>/_quarantine/<name>/`` holds the entry as it was, plus ``REASON.txt`` (one line: UTC time and
what was wrong). A second damaged entry of the same name gets ``<name>.2``, ``<name>.3``, ... . The
recorder logs each move once and counts it (``RecorderService.quarantined``); ``rtvoice sessions list
--spool-dir`` shows what is there. Nothing in quarantine is read again: an operator inspects and removes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rtvoice.recorder.spool import QUARANTINE, fsync_dir, make_private_dir, open_text

log = logging.getLogger(__name__)
REASON = "REASON.txt"


@dataclass(frozen=True, slots=True)
class QuarantinedEntry:
    """One quarantined spool entry: its folder name, where it is now, and the recorded reason."""

    name: str
    path: Path
    reason: str


def quarantine(entry: Path, reason: str) -> Path:
    """Move spool folder ``entry`` into its spool's quarantine with a ``REASON.txt``; returns the new path.

    Blocking. Raises ``OSError`` when the move itself fails (the entry then stays where it is).
    """
    root = entry.parent / QUARANTINE
    make_private_dir(root)
    dest = root / entry.name
    n = 1
    while dest.exists():
        n += 1
        dest = root / f"{entry.name}.{n}"
    os.rename(entry, dest)
    line = " ".join(reason.split())  # one line, whatever the exception text held
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open_text(dest / REASON) as f:
        f.write(f"{stamp} {line}\n")
    fsync_dir(root)
    fsync_dir(entry.parent)
    log.error("spool entry %s is damaged (%s); moved to %s", entry.name, line, dest)
    return dest


def list_quarantine(spool_dir: Path) -> list[QuarantinedEntry]:
    """The quarantined entries of a spool folder, sorted by name (empty when there are none)."""
    root = spool_dir / QUARANTINE
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if d.is_dir():
            try:
                reason = (d / REASON).read_text(encoding="utf-8").strip()
            except OSError as exc:
                reason = f"(no {REASON}: {exc.strerror or exc})"
            out.append(QuarantinedEntry(d.name, d, reason))
    return out
