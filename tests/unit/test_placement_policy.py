"""The pure parts of placement and admission: bridge targets, the endpoint choice, the capacity gate,
the typed ``full`` refusal, and secret files re-read on rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rtvoice.core.capacity import CapacityFullError, CapacityGate, retry_after_header
from rtvoice.core.internal_auth import InternalCredentials, credentials_from
from rtvoice.core.secret_file import SecretFile, SecretFileError
from rtvoice.ingress.endpoints import Endpoint, EndpointPool, Health
from rtvoice.ingress.targets import TargetError, parse_target, resolve
from rtvoice.v1 import frames_pb2 as pb


def test_targets_parse_every_form_and_reject_bad_ones() -> None:
    assert parse_target("bridge:50051").static == ("bridge:50051",)
    assert parse_target("a:1, b:2").static == ("a:1", "b:2")
    dns = parse_target("dns:///rtvoice-bridge-x-headless.ns.svc.cluster.local:50051")
    assert (dns.dns_host, dns.dns_port, dns.dynamic) == (
        "rtvoice-bridge-x-headless.ns.svc.cluster.local",
        50051,
        True,
    )
    assert parse_target("dns:localhost:7").dns_host == "localhost"
    for bad in ("", "nohost", "a:0", "a:99999", "dns://8.8.8.8/name:1", "a:1,b"):
        with pytest.raises(TargetError):
            parse_target(bad)


async def test_dns_targets_resolve_with_the_system_resolver() -> None:
    assert await resolve(parse_target("dns:///localhost:50051")) in (
        ["127.0.0.1:50051"],
        ["127.0.0.1:50051", "[::1]:50051"],
        ["[::1]:50051", "127.0.0.1:50051"],
    )
    with pytest.raises(OSError):
        await resolve(parse_target("dns:///no-such-host.invalid:1"))


async def _pool(*addresses: str) -> EndpointPool:
    pool = EndpointPool(parse_target(",".join(addresses)))
    for address in addresses:
        ep = Endpoint(address, watch_health=False)
        ep.health = Health.SERVING
        pool.endpoints[address] = ep
    return pool


async def test_pick_takes_the_least_loaded_ready_endpoint_round_robin_on_ties() -> None:
    pool = await _pool("a:1", "b:1", "c:1")
    try:
        picks = []
        for _ in range(6):  # all idle: they take turns
            ep = pool.pick(set())
            assert ep is not None
            picks.append(ep.address)
        assert sorted(picks) == ["a:1", "a:1", "b:1", "b:1", "c:1", "c:1"]
        a, b, c = (pool.endpoints[x] for x in ("a:1", "b:1", "c:1"))
        a.live, b.live, c.live = 3, 1, 2
        assert pool.pick(set()) is b
        b.health = Health.NOT_SERVING  # draining or full: skipped
        assert pool.pick(set()) is c
        c.refused_full(retry_after_ms=60_000)
        assert pool.pick(set()) is a and pool.pick({"a:1"}) is None
        assert pool.saturated() is False  # a is still ready
        a.health = Health.DOWN  # down endpoints are tried only when nothing is ready
        assert pool.pick(set()) is a and pool.saturated() is True
        a.health = Health.NOT_SERVING
        assert pool.pick(set()) is None and pool.saturated() is True
    finally:
        await pool.close()


def test_capacity_gate_counts_admissions_and_flips_once_per_change() -> None:
    flips: list[bool] = []
    gate = CapacityGate(max_sessions=2, max_loop_lag_ms=0, retry_after_ms=1500, on_change=flips.append)
    assert gate.refusal() is None
    gate.admit()
    gate.admit()
    err = gate.refusal()
    assert isinstance(err, CapacityFullError) and "2 of 2" in err.message
    frame = err.to_frame()
    assert (frame.kind, frame.code, frame.retryable, frame.fatal, frame.retry_after_ms) == (
        pb.ERROR_KIND_UNAVAILABLE,
        "full",
        True,
        True,
        1500,
    )
    gate.release()
    assert gate.refusal() is None
    assert flips == [True, False]
    assert (retry_after_header(1500), retry_after_header(2000), retry_after_header(1)) == ("2", "2", "1")
    with pytest.raises(ValueError):
        CapacityGate(max_sessions=-1)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_secret_files_are_re_read_when_they_change(tmp_path: Path) -> None:
    path = tmp_path / "key"
    _replace(path, "first\n")
    secret = SecretFile(path, check_interval_s=0.0)
    assert secret.value() == "first"
    _replace(path, "second")
    assert secret.value() == "second" and secret.reloads == 1
    path.unlink()  # being replaced: the last good value stays
    assert secret.value() == "second" and "cannot read" in (secret.last_error or "")
    with pytest.raises(SecretFileError, match="empty"):
        _replace(tmp_path / "empty", "  \n")
        SecretFile(tmp_path / "empty").value()


def test_internal_credentials_send_the_first_token_and_accept_any(tmp_path: Path) -> None:
    path = tmp_path / "token"
    _replace(path, "new-token\nold-token\n")
    creds = InternalCredentials(path, check_interval_s=0.0)
    assert creds.metadata() == (("authorization", "Bearer new-token"),)
    assert creds.accepts("Bearer new-token") and creds.accepts("Bearer old-token")
    assert not creds.accepts("Bearer other") and not creds.accepts("new-token") and not creds.accepts(None)
    assert credentials_from(None, {}) is None
    assert credentials_from(None, {"RTVOICE_INTERNAL_TOKEN_FILE": str(path)}) is not None
    with pytest.raises(SecretFileError):
        credentials_from(str(tmp_path / "missing"), {})
    assert not creds.accepts(b"Bearer " + b"x" * 10_000)  # long garbage: refused, no error
