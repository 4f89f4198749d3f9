"""`--workers N`: the arguments each worker process gets from its parent's."""

from __future__ import annotations

import socket

import pytest

from rtvoice.core.workers import claim_port, worker_args


def test_worker_flags_replace_the_parents_own() -> None:
    argv = ["--host", "0.0.0.0", "--port", "8080", "--workers=4", "--metrics-port", "9464", "--no-auth"]
    assert worker_args(argv, 8080, 9465) == [
        "--host", "0.0.0.0", "--no-auth",
        "--workers", "1", "--reuse-port", "--port", "8080", "--metrics-port", "9465",
    ]  # fmt: skip


def test_without_metrics_no_metrics_port_is_added() -> None:
    assert worker_args(["--port=0", "--workers", "2", "--reuse-port"], 41000, None) == [
        "--workers", "1", "--reuse-port", "--port", "41000",
    ]  # fmt: skip


def test_a_claimed_port_can_be_shared_by_reuseport_listeners_only() -> None:
    holder = claim_port("127.0.0.1", 0)
    port = holder.getsockname()[1]
    try:
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))  # what each worker's server does
        worker.listen()
        worker.close()
        with pytest.raises(OSError):  # a process without SO_REUSEPORT cannot take the port
            plain = socket.socket()
            try:
                plain.bind(("127.0.0.1", port))
            finally:
                plain.close()
    finally:
        holder.close()
