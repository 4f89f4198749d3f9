"""`rtvoice token` refuses agent names no caller URL can use (Kubernetes DNS-1123 labels or '*')."""

from __future__ import annotations

import pytest

from rtvoice.cli import main
from rtvoice.ingress.auth import SECRET_ENV, check_token

SECRET = "a-test-secret-of-32-bytes-length!"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def test_a_valid_scope_mints_a_token_the_ingress_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--namespace", "team-a", "--name", "assistant-2"]) == 0
    token = capsys.readouterr().out.strip()
    claims = check_token(SECRET.encode(), token, "team-a", "assistant-2")
    assert (claims.namespace, claims.name) == ("team-a", "assistant-2")


def test_wildcards_are_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--namespace", "*", "--name", "*"]) == 0
    assert capsys.readouterr().out.startswith("rtv1.")


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--name", "My_Agent"),
        ("--name", "Assistant"),
        ("--name", "-lead"),
        ("--name", "trail-"),
        ("--name", "a" * 64),
        ("--name", "a.b"),
        ("--name", "a/b"),
        ("--namespace", "Team"),
        ("--namespace", ""),
    ],
)
def test_invalid_names_exit_2_with_the_rule(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["token", "--name", "assistant", f"{flag}={value}"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert repr(value) in captured.err and "lower-case letters, digits and '-'" in captured.err
