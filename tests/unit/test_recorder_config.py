"""Recorder configuration: S3 flags and credentials, object keys, start-up errors, graceful stop."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rtvoice.recorder.cli import register
from rtvoice.recorder.s3 import MIB, S3ConfigError, S3Options, s3_options_from_args
from rtvoice.recorder.spool import check_session_id
from tests.support.recorder import STARTED_UNIX_NS, RecorderProcess


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rtvoice")
    register(parser.add_subparsers())
    return parser.parse_args(["recorder", *argv])


def test_s3_off_by_default_and_half_config_is_an_error() -> None:
    assert s3_options_from_args(_args()) is None
    with pytest.raises(S3ConfigError, match="needs both"):
        s3_options_from_args(_args("--s3-bucket", "b"))
    with pytest.raises(S3ConfigError, match="at least 5"):
        s3_options_from_args(_args("--s3-endpoint", "h:1", "--s3-bucket", "b", "--s3-part-size-mib", "4"))


def test_s3_endpoint_tls_and_credentials_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aws-ak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-sk")
    monkeypatch.delenv("RTVOICE_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("RTVOICE_S3_SECRET_KEY", raising=False)
    opts = s3_options_from_args(
        _args("--s3-endpoint", "http://minio:9000", "--s3-bucket", "b", "--s3-prefix", "/p/")
    )
    assert opts == S3Options(endpoint="minio:9000", bucket="b", prefix="p", secure=False,
                             access_key="aws-ak", secret_key="aws-sk", part_size=5 * MIB)  # fmt: skip
    monkeypatch.setenv("RTVOICE_S3_ACCESS_KEY", "rt-ak")
    monkeypatch.setenv("RTVOICE_S3_SECRET_KEY", "rt-sk")
    opts = s3_options_from_args(
        _args("--s3-endpoint", "s3.example:443", "--s3-bucket", "b", "--s3-part-size-mib", "8")
    )
    assert opts is not None and opts.secure and opts.access_key == "rt-ak" and opts.part_size == 8 * MIB
    opts = s3_options_from_args(_args("--s3-endpoint", "https://h", "--s3-bucket", "b", "--no-s3-tls"))
    assert opts is not None and not opts.secure


def test_s3_credentials_from_a_mounted_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTVOICE_S3_ACCESS_KEY", "env-ak")
    (tmp_path / "accessKey").write_text("secret-ak\n")
    (tmp_path / "secretKey").write_text("secret-sk\n")
    opts = s3_options_from_args(
        _args("--s3-endpoint", "h:1", "--s3-bucket", "b", "--s3-credentials-dir", str(tmp_path))
    )
    assert opts is not None and (opts.access_key, opts.secret_key) == ("secret-ak", "secret-sk")
    (tmp_path / "secretKey").unlink()
    with pytest.raises(S3ConfigError, match="accessKey and secretKey"):
        s3_options_from_args(
            _args("--s3-endpoint", "h:1", "--s3-bucket", "b", "--s3-credentials-dir", str(tmp_path))
        )


def test_object_keys_and_session_ids() -> None:
    opts = S3Options(endpoint="h:1", bucket="b", prefix="archive")
    assert opts.folder_key("sales bot", STARTED_UNIX_NS, "s-1") == "archive/sales_bot/2026/01/02/s-1"
    assert (
        S3Options(endpoint="h:1", bucket="b").folder_key("", STARTED_UNIX_NS, "s") == "unknown/2026/01/02/s"
    )
    assert check_session_id("abc-1.2_3") == "abc-1.2_3"
    for bad in ("", "../x", "a/b", ".hidden", "x" * 129):
        with pytest.raises(Exception, match="session id"):
            check_session_id(bad)


def test_start_up_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "rtvoice", "recorder", "--port", str(port), "--spool-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"rtvoice: recorder: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_archive_mode_and_group_flags_are_checked(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "rtvoice", "recorder", "--port", "0", "--spool-dir", str(tmp_path)]
    for flags, expected in (
        (["--archive-mode", "0640"], "owner rwx"),
        (["--archive-mode", "0750", "--archive-group", "no-such-group-rtvoice"], "unknown group"),
        (["--archive-mode", "rwx"], "not an octal mode"),
    ):
        r = subprocess.run([*base, *flags], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and expected in r.stderr, r.stderr


async def test_sigterm_stops_gracefully(tmp_path: Path) -> None:
    proc = RecorderProcess(["--spool-dir", str(tmp_path / "spool"), "--archive-dir", str(tmp_path / "a")])
    assert await proc.start() > 0
    assert await proc.terminate() == 0
