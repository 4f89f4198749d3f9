"""The ingress's browser Origin check compares scheme, host and port (RFC 6454 origins)."""

from __future__ import annotations

import pytest

from rtvoice.ingress.gate import origin_allowed, origin_key

NONE: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://App.Example.com", ("https", "app.example.com", 443)),
        ("https://app.example.com:443/", ("https", "app.example.com", 443)),
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080)),
        ("wss://app.example.com", ("https", "app.example.com", 443)),
        ("http://[::1]:9000", ("http", "::1", 9000)),
        ("null", None),
        ("file:///etc/passwd", None),
        ("https://host:99999", None),
        ("app.example.com", None),
    ],
)
def test_origin_key(url: str, key: tuple[str, str, int] | None) -> None:
    assert origin_key(url) == key


def test_same_origin_needs_the_same_scheme() -> None:
    assert origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", NONE)
    # Same host:port, other scheme: a different origin (was accepted when only host:port was compared).
    assert not origin_allowed("https://127.0.0.1:8080", "127.0.0.1:8080", NONE)
    assert not origin_allowed("http://127.0.0.1:8081", "127.0.0.1:8080", NONE)


def test_behind_a_tls_proxy_the_forwarded_scheme_counts() -> None:
    assert origin_allowed("https://voice.example.com", "voice.example.com", NONE, "https")
    assert not origin_allowed("http://voice.example.com", "voice.example.com", NONE, "https")
    assert origin_allowed("https://voice.example.com", "voice.example.com", NONE, "https, http")
    assert not origin_allowed("https://voice.example.com", "voice.example.com", NONE)


def test_allow_list_compares_normalized_origins() -> None:
    allowed = frozenset({"https://app.example.com"})
    assert origin_allowed("https://APP.example.com:443", "ingress:8080", allowed)
    assert not origin_allowed("http://app.example.com", "ingress:8080", allowed)
    assert not origin_allowed("https://app.example.com:8443", "ingress:8080", allowed)
    assert not origin_allowed("null", "ingress:8080", allowed)
    assert origin_allowed("null", "ingress:8080", frozenset({"*"}))


def test_non_browser_clients_send_no_origin() -> None:
    assert origin_allowed(None, None, NONE)
