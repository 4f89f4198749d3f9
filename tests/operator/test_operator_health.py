"""The exec-probe health check against a real gRPC server with the standard health service."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from rtvoice_operator.health import check


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_serving_not_serving_and_unreachable(health_server: tuple[str, health.HealthServicer]) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert check(address) == (True, f"{address}: SERVING")
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # a draining bridge
    assert check(address) == (False, f"{address}: NOT_SERVING")
    serving, detail = check(address, service="rtvoice.v1.RealtimeBridge")
    assert not serving and "NOT_FOUND" in detail
    closed = "127.0.0.1:1"
    serving, detail = check(closed, timeout_s=1.0)
    assert not serving and "UNAVAILABLE" in detail


def test_probe_command_exit_codes(health_server: tuple[str, health.HealthServicer]) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    cmd = [sys.executable, "-m", "rtvoice_operator.health", "--grpc", address]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"{address}: SERVING")
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == f"{address}: NOT_SERVING"
