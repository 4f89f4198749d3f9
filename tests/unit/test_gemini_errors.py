"""Gemini Live close codes → typed failures (docs/providers.md, Gemini Live "Errors")."""

from __future__ import annotations

import pytest

from rtvoice.bridge.providers.gemini.errors import classify_close, handshake_error
from rtvoice.core.errors import RealtimeAuthError, RealtimeProviderError
from rtvoice.v1 import frames_pb2 as pb
from tests.support.fake_gemini import BAD_KEY, DEADLINE, INTERNAL, INVALID_ARGUMENT, QUOTA


@pytest.mark.parametrize(
    ("close", "reconnect", "kind", "code", "retryable"),
    [
        (BAD_KEY, False, pb.ERROR_KIND_AUTH, "invalid_api_key", False),
        (INVALID_ARGUMENT, False, pb.ERROR_KIND_PROVIDER, "invalid_argument", False),
        (
            (
                1008,
                "models/x is not found for API version v1beta, or is not supported for bidiGenerateContent.",
            ),
            False,
            pb.ERROR_KIND_PROVIDER,
            "model_not_found",
            False,
        ),
        (
            (1008, "Operation is not implemented, or supported, or enabled."),
            False,
            pb.ERROR_KIND_PROVIDER,
            "not_supported",
            False,
        ),
        (QUOTA, False, pb.ERROR_KIND_PROVIDER, "quota_exceeded", False),
        (INTERNAL, True, pb.ERROR_KIND_PROVIDER, "connection_lost", True),
        (DEADLINE, True, pb.ERROR_KIND_PROVIDER, "connection_lost", True),
        ((1000, ""), True, pb.ERROR_KIND_PROVIDER, "connection_lost", True),
        ((None, ""), True, pb.ERROR_KIND_PROVIDER, "connection_lost", True),
    ],
)
def test_close_mapping(
    close: tuple[int | None, str], reconnect: bool, kind: int, code: str, retryable: bool
) -> None:
    outcome = classify_close(*close)
    assert outcome.reconnect is reconnect
    frame = outcome.error.to_frame()
    assert (frame.kind, frame.code, frame.retryable, frame.fatal) == (kind, code, retryable, True)
    assert str(close[0] if close[0] is not None else "no close frame") in frame.message


def test_handshake_statuses() -> None:
    assert isinstance(handshake_error(401, "denied"), RealtimeAuthError)
    assert isinstance(handshake_error(403, ""), RealtimeAuthError)
    assert handshake_error(404, "").code == "not_found"
    busy = handshake_error(503, "try later")
    assert isinstance(busy, RealtimeProviderError) and busy.retryable and busy.code == "http_503"
    assert not handshake_error(400, "bad").retryable


def test_long_reasons_are_cut() -> None:
    assert len(classify_close(1011, "x" * 5000).error.message) < 400
