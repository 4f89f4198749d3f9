"""Configuration of ``rtvoice recorder`` and ``rtvoice sessions``: one model each, giving the flags, the
``RTVOICE_*`` variables and the checks (see :mod:`rtvoice.core.config`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from rtvoice.core.config import ConfigError, Opt
from rtvoice.core.server_settings import InternalAuthSettings, MetricsSettings, ServerSettings
from rtvoice.recorder.s3 import S3Settings

DEFAULT_ARCHIVE = Path(".rtvoice/archive")
DEFAULT_SPOOL = Path(".rtvoice/spool")
_MONGO = "MongoDB span sink (off unless --mongo-uri or RTVOICE_MONGO_URI)"


def octal_mode(text: str) -> int:
    """``"0750"`` → ``0o750``; raises ``ValueError`` for text that is not an octal permission mode."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"{text!r} is not an octal mode such as 0700")
    return mode


class RecorderSettings(ServerSettings, MetricsSettings, InternalAuthSettings, S3Settings):
    """``rtvoice recorder``."""

    service: ClassVar[str] = "recorder"
    shared_env: ClassVar[bool] = False
    config_error: ClassVar[type[ConfigError]] = ConfigError

    archive_dir: Path = Field(DEFAULT_ARCHIVE, description="local archive folder")
    spool_dir: Path = Field(
        DEFAULT_SPOOL, description="where sessions are written while they run and until stored"
    )
    resume_grace_s: float = Field(
        30.0,
        ge=0,
        description="how long a broken stream may take to resume before its archive is finalized, s",
    )
    recorder_id: Annotated[
        str, Opt(own_env=False, env=("RTVOICE_RECORDER_ID",), default_text="the host name", metavar="ID")
    ] = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="stable id of this instance, sent in every ack so a resumed bridge link returns here "
        "(in a StatefulSet the host name is the pod name)",
    )
    archive_mode: Annotated[int, Opt(parse=octal_mode, default_text="0700", metavar="MODE")] = Field(
        0o700,
        description="mode of local archive folders in octal; files get its rw bits (0700 -> files 0600; "
        "e.g. 0750 with --archive-group for a shared group)",
    )
    archive_group: Annotated[str | None, Opt(metavar="GROUP")] = Field(
        None,
        description="group (name or id) of local archive folders and files (default: the recorder's group)",
    )
    sync_interval_ms: float = Field(
        0.0,
        ge=0,
        description="least time between two fdatasync+acks of one session, ms; 0 = one per record batch. "
        "Larger values trade ack latency for CPU",
    )
    unsafe_no_fsync: Annotated[bool, Opt(switch=True)] = Field(
        False, description="benchmarks only: skip fdatasync, so acked frames may be lost on a power failure"
    )
    upload_retry_max_s: float = Field(60.0, gt=0, description="longest wait between upload retries, s")
    mongo_uri: Annotated[
        str | None, Opt(own_env=False, env=("RTVOICE_MONGO_URI",), group=_MONGO, metavar="URI")
    ] = Field(None, description="mongodb:// URI")
    mongo_db: Annotated[str, Opt(group=_MONGO, metavar="NAME")] = Field(
        "rtvoice", min_length=1, description="database; collection workflow_spans"
    )
    span_queue_max: Annotated[int, Opt(group=_MONGO, metavar="SPANS")] = Field(
        10_000, ge=1, description="spans waiting for MongoDB before drops"
    )
    span_batch_size: Annotated[int, Opt(group=_MONGO, metavar="SPANS")] = Field(
        100, ge=1, description="spans per insert_many"
    )


class SessionsSettings(S3Settings):
    """``rtvoice sessions`` (its subcommands and their arguments are declared by the command itself)."""

    service: ClassVar[str] = "sessions"
    shared_env: ClassVar[bool] = False

    archive_dir: Path = Field(DEFAULT_ARCHIVE, description="local archive folder")
    spool_dir: Path = Field(
        DEFAULT_SPOOL, description="recorder spool whose quarantined entries `list` shows"
    )
