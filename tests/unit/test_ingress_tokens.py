"""Caller tokens: minting, verification, scope and expiry."""

from __future__ import annotations

import base64
import json

import pytest

from rtvoice.core.service import redact
from rtvoice.ingress.auth import TokenError, authorize, check_token, load_secret, mint_token, verify_token

SECRET = b"unit-test-secret-0123456789"


def test_round_trip_and_claims() -> None:
    tok = mint_token(SECRET, "team", "helper", 60, subject="bob", now_unix_s=1000)
    assert tok.startswith("rtv1.") and tok.count(".") == 2
    claims = verify_token(SECRET, tok)
    assert (claims.namespace, claims.name, claims.issued_unix_s, claims.expires_unix_s, claims.subject) == (
        "team",
        "helper",
        1000,
        1060,
        "bob",
    )
    authorize(claims, "team", "helper", now_unix_s=1059)
    assert redact(f"token {tok} here") == "token rtv1.*** here"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "missing_token"),
        ("", "missing_token"),
        ("Bearer x", "malformed_token"),
        ("rtv1.onlyonepart", "malformed_token"),
        ("rtv1.a.b.c", "malformed_token"),
        ("rtv1." + "a" * 5000 + ".b", "malformed_token"),
        ("rtv1.é.sig", "malformed_token"),
    ],
)
def test_malformed_tokens_are_401(token: str | None, code: str) -> None:
    with pytest.raises(TokenError) as exc:
        verify_token(SECRET, token)
    assert (exc.value.status, exc.value.code) == (401, code)


def test_tampering_and_other_secrets_are_401() -> None:
    tok = mint_token(SECRET, "team", "helper", 60)
    prefix, _payload, sig = tok.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"ns": "*", "name": "*", "iat": 0, "exp": 2**40}).encode())
    for bad in (
        f"{prefix}.{forged.decode().rstrip('=')}.{sig}",
        tok[:-2] + "xx",
        mint_token(b"x" * 20, "team", "helper", 60),
    ):
        with pytest.raises(TokenError) as exc:
            verify_token(SECRET, bad)
        assert exc.value.status == 401 and exc.value.code == "bad_signature"
        assert bad not in exc.value.message


def test_signed_garbage_payload_is_401() -> None:
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(b'{"ns": "a"}').decode().rstrip("=")
    sig = base64.urlsafe_b64encode(hmac.new(SECRET, f"rtv1.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(TokenError) as exc:
        verify_token(SECRET, f"rtv1.{payload}.{sig.decode().rstrip('=')}")
    assert exc.value.code == "malformed_token"


def test_scope_and_expiry_are_403() -> None:
    tok = mint_token(SECRET, "team", "helper", 60, now_unix_s=1000)
    claims = verify_token(SECRET, tok)
    for ns, name, code in (("team", "other", "wrong_agent"), ("other", "helper", "wrong_agent")):
        with pytest.raises(TokenError) as exc:
            authorize(claims, ns, name, now_unix_s=1001)
        assert (exc.value.status, exc.value.code) == (403, code)
    with pytest.raises(TokenError) as exc:
        authorize(claims, "team", "helper", now_unix_s=1060)
    assert (exc.value.status, exc.value.code) == (403, "expired")
    wide = verify_token(SECRET, mint_token(SECRET, "team", "*", 60))
    assert wide.allows("team", "anyone") and not wide.allows("x", "anyone")
    check_token(SECRET, mint_token(SECRET, "*", "*", 60), "a", "b")


def test_mint_validation_and_secret_loading(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        mint_token(b"short", "a", "b", 60)
    with pytest.raises(ValueError):
        mint_token(SECRET, "", "b", 60)
    with pytest.raises(ValueError):
        mint_token(SECRET, "a", "b", 0)
    f = tmp_path / "s"
    f.write_bytes(SECRET + b"\n")
    assert load_secret(str(f), {}) == SECRET
    assert load_secret(None, {"RTVOICE_AUTH_SECRET": SECRET.decode()}) == SECRET
    assert load_secret(None, {}) is None
    with pytest.raises(ValueError, match="at least 16"):
        load_secret(None, {"RTVOICE_AUTH_SECRET": "short"})
    with pytest.raises(ValueError, match="cannot read"):
        load_secret(str(tmp_path / "missing"), {})
