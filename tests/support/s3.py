"""A real S3 API server on loopback for the recorder's tests: moto's standalone server in its own venv.

moto pulls botocore, whose python-dateutil pin conflicts with our environment, so it runs from
``.venv-moto`` (made by ``scripts/moto-venv.sh`` in ``make test-tools``, before pytest) as a subprocess
on a free port. It keeps objects in memory: a restart starts empty (tests re-create the bucket, as an
operator would).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

from rtvoice.recorder.s3 import S3Options

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "moto-venv.sh"
BUCKET = "rtvoice-archive"


def moto_server_path() -> Path:
    """The moto_server executable of ``.venv-moto``; RuntimeError when ``make test-tools`` has not made it."""
    exe = ROOT / ".venv-moto" / "bin" / "moto_server"
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: run `make test-tools` (it runs {SCRIPT.name} before pytest)")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT``; ``stop()`` and ``start()`` again keep the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def options(self, prefix: str = "rec", **kw: object) -> S3Options:
        """S3 options for the recorder / sessions reader pointing at this server (plain HTTP)."""
        return S3Options(
            endpoint=self.endpoint, bucket=BUCKET, prefix=prefix, region="us-east-1", secure=False,
            access_key="testing", secret_key="testing", **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    def start(self, make_bucket: bool = True, timeout_s: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [str(moto_server_path()), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                httpx.get(f"http://{self.endpoint}/", timeout=1.0)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"moto_server did not start on port {self.port}") from None
                time.sleep(0.1)
        if make_bucket:
            client = self.options().client()
            if not client.bucket_exists(BUCKET):
                client.make_bucket(BUCKET, location="us-east-1")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
