"""S3-compatible object store settings shared by ``rtvoice recorder`` and ``rtvoice sessions``.

Credentials come from ``--s3-credentials-dir`` (a mounted Kubernetes Secret with files ``accessKey`` and
``secretKey``), else the environment: ``RTVOICE_S3_ACCESS_KEY`` / ``RTVOICE_S3_SECRET_KEY``, else
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``. Object keys of an archive:
``<prefix>/<agent>/<yyyy>/<mm>/<dd>/<session id>/<file>`` (UTC date of the session start).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import urllib3
from minio import Minio

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
_AGENT_SAFE = re.compile(r"[^A-Za-z0-9._\-]+")


class S3ConfigError(ValueError):
    """The S3 options are incomplete or contradictory (message says which flag to fix)."""


@dataclass(frozen=True, slots=True)
class S3Options:
    """Where archives live in an S3-compatible store (AWS S3, MinIO, Ceph, ...)."""

    endpoint: str
    bucket: str
    prefix: str = ""
    region: str | None = None
    secure: bool = True
    access_key: str | None = None
    secret_key: str | None = None
    part_size: int = MIN_PART_SIZE
    create_bucket: bool = False

    def client(self, *, retries: int = 2, timeout_s: float = 30.0) -> Minio:
        """A ``minio.Minio`` client with bounded HTTP retries (the recorder retries whole uploads itself)."""
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(5.0, timeout_s), read=timeout_s),
            retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=8,
        )
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=self.secure,
            region=self.region,
            http_client=http,
        )

    def folder_key(self, agent: str, started_unix_ns: int, session_id: str) -> str:
        """``<prefix>/<agent>/<yyyy>/<mm>/<dd>/<session id>`` (no trailing slash)."""
        day = dt.datetime.fromtimestamp(started_unix_ns / 1e9, tz=dt.UTC)
        agent_part = _AGENT_SAFE.sub("_", agent) or "unknown"
        parts = [self.prefix.strip("/"), agent_part, f"{day:%Y}", f"{day:%m}", f"{day:%d}", session_id]
        return "/".join(p for p in parts if p)

    def uri(self, key: str) -> str:
        """``s3://<bucket>/<key>``."""
        return f"s3://{self.bucket}/{key}"


def add_s3_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--s3-*`` flags (an endpoint and a bucket switch the object store on)."""
    g = parser.add_argument_group("S3-compatible object store (off unless --s3-endpoint and --s3-bucket)")
    g.add_argument("--s3-endpoint", help="host:port or http(s)://host:port of the S3 API (AWS, MinIO, ...)")
    g.add_argument("--s3-bucket", help="bucket that holds the archives")
    g.add_argument("--s3-prefix", default="", help="key prefix before <agent>/<yyyy>/<mm>/<dd>/<session id>/")
    g.add_argument("--s3-region", default=None, help="region (e.g. us-east-1); default: ask the server")
    g.add_argument(
        "--s3-tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use HTTPS (default on, or as given by an http:// / https:// endpoint)",
    )
    g.add_argument(
        "--s3-credentials-dir",
        type=Path,
        default=None,
        help="directory with files accessKey and secretKey (a mounted Secret); default: env "
        "RTVOICE_S3_ACCESS_KEY/RTVOICE_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    )
    g.add_argument(
        "--s3-part-size-mib", type=int, default=5, help="multipart upload part size in MiB (>= 5, default 5)"
    )
    g.add_argument("--s3-create-bucket", action="store_true", help="create the bucket when it does not exist")


def load_credentials(credentials_dir: Path | None) -> tuple[str | None, str | None]:
    """(access key, secret key) from the Secret directory or the environment; (None, None) when absent.

    Raises ``S3ConfigError`` when the directory lacks one of its files.
    """
    if credentials_dir is not None:
        try:
            access: str | None = (credentials_dir / "accessKey").read_text(encoding="utf-8").strip()
            secret: str | None = (credentials_dir / "secretKey").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise S3ConfigError(
                f"--s3-credentials-dir {credentials_dir}: need readable files accessKey and secretKey ({exc})"
            ) from exc
        return access, secret
    access = os.environ.get("RTVOICE_S3_ACCESS_KEY") or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("RTVOICE_S3_SECRET_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY")
    return access, secret


def s3_options_from_args(args: argparse.Namespace) -> S3Options | None:
    """The S3 options of parsed ``--s3-*`` flags; None when the object store is off.

    Raises ``S3ConfigError`` for a half-configured store or a part size below 5 MiB.
    """
    if not args.s3_endpoint and not args.s3_bucket:
        return None
    if not args.s3_endpoint or not args.s3_bucket:
        raise S3ConfigError("the object store needs both --s3-endpoint and --s3-bucket")
    endpoint = args.s3_endpoint
    secure = True if args.s3_tls is None else bool(args.s3_tls)
    if "://" in endpoint:
        url = urlparse(endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise S3ConfigError(f"--s3-endpoint {endpoint!r}: expected host:port or http(s)://host:port")
        endpoint = url.netloc
        if args.s3_tls is None:
            secure = url.scheme == "https"
    if args.s3_part_size_mib < 5:
        raise S3ConfigError("--s3-part-size-mib must be at least 5 (the S3 minimum part size)")
    access, secret = load_credentials(args.s3_credentials_dir)
    return S3Options(
        endpoint=endpoint,
        bucket=args.s3_bucket,
        prefix=args.s3_prefix.strip("/"),
        region=args.s3_region,
        secure=secure,
        access_key=access,
        secret_key=secret,
        part_size=args.s3_part_size_mib * MIB,
        create_bucket=args.s3_create_bucket,
    )
