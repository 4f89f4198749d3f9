"""S3-compatible object store settings shared by ``rtvoice recorder`` and ``rtvoice sessions``: the
``--s3-*`` flags and ``RTVOICE_S3_*`` variables (:class:`S3Settings`) and the resulting :class:`S3Options`.

Credentials come from ``--s3-credentials-dir`` (a mounted Kubernetes Secret with files ``accessKey`` and
``secretKey``), else the environment: ``RTVOICE_S3_ACCESS_KEY`` / ``RTVOICE_S3_SECRET_KEY``, else
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``. Object keys of an archive:
``<prefix>/<agent>/<yyyy>/<mm>/<dd>/<session id>/<file>`` (UTC date of the session start).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Self
from urllib.parse import urlparse

import urllib3
from minio import Minio
from pydantic import Field, SecretStr, model_validator

from rtvoice.core.config import ConfigError, Opt, ServiceSettings

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
_AGENT_SAFE = re.compile(r"[^A-Za-z0-9._\-]+")


class S3ConfigError(ConfigError):
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


_S3_GROUP = "S3-compatible object store (off unless --s3-endpoint and --s3-bucket)"


class S3Settings(ServiceSettings):
    """The ``--s3-*`` flags; the same ``RTVOICE_S3_*`` variables in every command that has them.

    Credentials come from ``--s3-credentials-dir`` (a mounted Secret with files ``accessKey`` and
    ``secretKey``), else ``RTVOICE_S3_ACCESS_KEY`` / ``RTVOICE_S3_SECRET_KEY``, else
    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
    """

    shared_env: ClassVar[bool] = True
    config_error: ClassVar[type[ConfigError]] = S3ConfigError

    s3_endpoint: Annotated[str | None, Opt(group=_S3_GROUP, metavar="URL")] = Field(
        None, description="host:port or http(s)://host:port of the S3 API (AWS, MinIO, ...)"
    )
    s3_bucket: Annotated[str | None, Opt(group=_S3_GROUP, metavar="BUCKET")] = Field(
        None, description="bucket that holds the archives"
    )
    s3_prefix: Annotated[str, Opt(group=_S3_GROUP, metavar="PREFIX")] = Field(
        "", description="key prefix before <agent>/<yyyy>/<mm>/<dd>/<session id>/"
    )
    s3_region: Annotated[str | None, Opt(group=_S3_GROUP, metavar="REGION")] = Field(
        None, description="region (e.g. us-east-1); default: ask the server"
    )
    s3_tls: Annotated[bool | None, Opt(group=_S3_GROUP)] = Field(
        None, description="use HTTPS (default on, or as given by an http:// / https:// endpoint)"
    )
    s3_credentials_dir: Annotated[Path | None, Opt(group=_S3_GROUP, metavar="DIR")] = Field(
        None,
        description="directory with files accessKey and secretKey (a mounted Secret); default: the variables",
    )
    s3_part_size_mib: Annotated[int, Opt(group=_S3_GROUP)] = Field(
        5, description="multipart upload part size in MiB (at least 5)"
    )
    s3_create_bucket: Annotated[bool, Opt(group=_S3_GROUP, switch=True)] = Field(
        False, description="create the bucket when it does not exist"
    )
    s3_access_key: Annotated[SecretStr | None, Opt(cli=False, env=("AWS_ACCESS_KEY_ID",))] = None
    s3_secret_key: Annotated[SecretStr | None, Opt(cli=False, env=("AWS_SECRET_ACCESS_KEY",))] = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if bool(self.s3_endpoint) != bool(self.s3_bucket):
            raise ValueError("the object store needs both --s3-endpoint and --s3-bucket")
        if self.s3_endpoint and "://" in self.s3_endpoint:
            url = urlparse(self.s3_endpoint)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(
                    f"--s3-endpoint {self.s3_endpoint!r}: expected host:port or http(s)://host:port"
                )
        if self.s3_part_size_mib < 5:
            raise ValueError("--s3-part-size-mib must be at least 5 (the S3 minimum part size)")
        return self

    def s3_options(self) -> S3Options | None:
        """The object store options; ``None`` when it is off. Raises ``S3ConfigError`` when
        ``--s3-credentials-dir`` lacks one of its files."""
        if not self.s3_endpoint or not self.s3_bucket:
            return None
        endpoint, secure = self.s3_endpoint, True if self.s3_tls is None else self.s3_tls
        if "://" in endpoint:
            url = urlparse(endpoint)
            endpoint = url.netloc
            if self.s3_tls is None:
                secure = url.scheme == "https"
        access, secret = self._credentials()
        return S3Options(
            endpoint=endpoint,
            bucket=self.s3_bucket,
            prefix=self.s3_prefix.strip("/"),
            region=self.s3_region,
            secure=secure,
            access_key=access,
            secret_key=secret,
            part_size=self.s3_part_size_mib * MIB,
            create_bucket=self.s3_create_bucket,
        )

    def _credentials(self) -> tuple[str | None, str | None]:
        if self.s3_credentials_dir is None:
            return (
                self.s3_access_key.get_secret_value() if self.s3_access_key else None,
                self.s3_secret_key.get_secret_value() if self.s3_secret_key else None,
            )
        try:
            access = (self.s3_credentials_dir / "accessKey").read_text(encoding="utf-8").strip()
            secret = (self.s3_credentials_dir / "secretKey").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise S3ConfigError(
                f"--s3-credentials-dir {self.s3_credentials_dir}: need readable files accessKey and "
                f"secretKey ({exc})"
            ) from exc
        return access, secret


def add_s3_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--s3-*`` flags (an endpoint and a bucket switch the object store on)."""
    S3Settings.add_arguments(parser)


def s3_options_from_args(args: argparse.Namespace) -> S3Options | None:
    """The S3 options of parsed ``--s3-*`` flags and the ``RTVOICE_S3_*`` variables; ``None`` when the object
    store is off. Raises ``S3ConfigError`` for a half-configured store or a part size below 5 MiB."""
    return S3Settings.from_args(args).s3_options()
