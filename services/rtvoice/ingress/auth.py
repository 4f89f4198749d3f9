"""Caller tokens: HMAC-SHA256 signed, scoped to one agent (or a ``*`` wildcard), with an expiry.

Format (docs/caller-protocol.md, "Tokens")::

    rtv1.<payload>.<signature>
    payload   = base64url(JSON {"ns": NAMESPACE, "name": NAME, "iat": UNIX_S, "exp": UNIX_S, "sub": SUBJECT})
    signature = base64url(HMAC-SHA256(secret, "rtv1." + payload))      (base64url without padding)

``ns`` / ``name`` may be ``"*"`` (any namespace / any agent). The ``rtv1.`` prefix lets
``rtvoice.core.service.redact`` mask tokens in logs. Verification: a missing, malformed or badly signed
token is *unauthenticated* (HTTP 401); a valid token for another agent, or expired, is *forbidden* (403).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

TOKEN_PREFIX = "rtv1."
SECRET_ENV = "RTVOICE_AUTH_SECRET"
MIN_SECRET_BYTES = 16
MAX_TOKEN_CHARS = 4096
WILDCARD = "*"


class TokenError(Exception):
    """A token was refused. ``status`` is the HTTP status of the refusal (401 or 403), ``code`` a short
    machine-readable reason (``missing_token``, ``malformed_token``, ``bad_signature``, ``expired``,
    ``wrong_agent``). The message never contains the token."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token grants: the agent ``namespace``/``name`` (``*`` = any), its validity
    (Unix seconds) and an optional caller ``subject`` (free text, recorded as session metadata)."""

    namespace: str
    name: str
    issued_unix_s: int
    expires_unix_s: int
    subject: str = ""

    def allows(self, namespace: str, name: str) -> bool:
        """True when the token is scoped to ``namespace/name`` (wildcards included)."""
        return self.namespace in (WILDCARD, namespace) and self.name in (WILDCARD, name)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload_b64: str) -> str:
    return _b64(hmac.new(secret, (TOKEN_PREFIX + payload_b64).encode("ascii"), hashlib.sha256).digest())


def mint_token(
    secret: bytes,
    namespace: str,
    name: str,
    ttl_s: float,
    *,
    subject: str = "",
    now_unix_s: float | None = None,
) -> str:
    """A token for agent ``namespace/name`` valid ``ttl_s`` seconds from ``now_unix_s`` (default: now).

    Raises ``ValueError`` for an empty scope, a non-positive ttl or a secret shorter than 16 bytes.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the auth secret must be at least {MIN_SECRET_BYTES} bytes")
    if not namespace or not name:
        raise ValueError("a token needs a namespace and a name (use '*' for any)")
    if ttl_s <= 0:
        raise ValueError("ttl must be positive")
    now = int(time.time() if now_unix_s is None else now_unix_s)
    claims = {"ns": namespace, "name": name, "iat": now, "exp": now + int(ttl_s), "sub": subject}
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{TOKEN_PREFIX}{payload}.{_sign(secret, payload)}"


def verify_token(secret: bytes, token: str | None) -> TokenClaims:
    """Check the signature and shape of ``token``; raises :class:`TokenError` (401) when it is missing,
    malformed or not signed with ``secret``. Expiry and scope are checked by :func:`authorize`."""
    if not token:
        raise TokenError(
            401, "missing_token", "a caller token is required (Authorization: Bearer or ?token=)"
        )
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX) or token.count(".") != 2:
        raise TokenError(
            401, "malformed_token", "the caller token is malformed (expected rtv1.<payload>.<sig>)"
        )
    payload_b64, sig = token[len(TOKEN_PREFIX) :].split(".")
    try:
        expected = _sign(secret, payload_b64)
    except UnicodeEncodeError:
        raise TokenError(401, "malformed_token", "the caller token is malformed") from None
    if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
        raise TokenError(401, "bad_signature", "the caller token was not signed by this server")
    try:
        doc = json.loads(_unb64(payload_b64))
        claims = TokenClaims(
            namespace=str(doc["ns"]),
            name=str(doc["name"]),
            issued_unix_s=int(doc["iat"]),
            expires_unix_s=int(doc["exp"]),
            subject=str(doc.get("sub", "")),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise TokenError(401, "malformed_token", "the caller token payload is malformed") from None
    return claims


def authorize(claims: TokenClaims, namespace: str, name: str, *, now_unix_s: float | None = None) -> None:
    """Raise :class:`TokenError` (403) when ``claims`` are expired or scoped to another agent."""
    now = time.time() if now_unix_s is None else now_unix_s
    if now >= claims.expires_unix_s:
        raise TokenError(403, "expired", "the caller token has expired; ask for a new one")
    if not claims.allows(namespace, name):
        raise TokenError(
            403, "wrong_agent", f"the caller token does not grant access to agent {namespace}/{name}"
        )


def check_token(secret: bytes, token: str | None, namespace: str, name: str) -> TokenClaims:
    """:func:`verify_token` then :func:`authorize`; returns the claims or raises :class:`TokenError`."""
    claims = verify_token(secret, token)
    authorize(claims, namespace, name)
    return claims


def load_secret(path: str | None = None, environ: dict[str, str] | None = None) -> bytes | None:
    """The server secret: the file at ``path`` (trailing newline stripped) or env ``RTVOICE_AUTH_SECRET``.

    Returns ``None`` when neither is set. Raises ``ValueError`` when the file cannot be read or the secret
    is shorter than 16 bytes.
    """
    env = os.environ if environ is None else environ
    if path:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as err:
            raise ValueError(f"cannot read the auth secret file {path}: {err.strerror}") from None
    elif env.get(SECRET_ENV):
        secret = env[SECRET_ENV].strip().encode()
    else:
        return None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the auth secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret
