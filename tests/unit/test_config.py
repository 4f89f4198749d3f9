"""The configuration adapter: one pydantic-settings model gives the flags, the variables and the checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import pytest
from pydantic import Field

from rtvoice.core.config import ConfigError, Opt, comma_list
from rtvoice.core.server_settings import ServerSettings


class DemoSettings(ServerSettings):
    service: ClassVar[str] = "demo"

    spool_dir: Path = Field(Path("spool"), description="where frames wait")
    grace_s: Annotated[float, Opt(env=("RTVOICE_GRACE_S",))] = Field(30.0, ge=0, description="wait, s")
    mode: Literal["fast", "safe"] = Field("safe", description="how")
    stage: Annotated[str | None, Opt(choices=("a", "b"))] = Field(None, description="stage")
    create: bool = Field(False, description="create the folder")
    no_auth: Annotated[bool, Opt(switch=True)] = Field(False, description="accept anyone")
    phrase: Annotated[list[str], Opt(flag="--phrase")] = Field(default_factory=list, description="a phrase")
    pull_secrets: Annotated[list[str], Opt(cli=False, own_env=False, env=("RTVOICE_PULL_SECRETS",),
                                            parse=comma_list)] = Field(default_factory=list)  # fmt: skip
    resources: dict[str, dict[str, str]] = Field(default_factory=dict, description="requests/limits")
    token: Annotated[str | None, Opt(short="-t", group="secrets")] = Field(None, description="a token")
    chat_url: Annotated[str | None, Opt(flag="--llm-url", aliases=("--chat-url",))] = Field(
        None, description="u"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo")
    DemoSettings.add_arguments(parser)
    return parser


def test_defaults_flags_and_env_in_that_order() -> None:
    cfg = DemoSettings.from_args(_parser().parse_args([]), environ={})
    assert (cfg.host, cfg.port, cfg.log_level, cfg.grace_s, cfg.create) == (
        "127.0.0.1",
        0,
        "INFO",
        30.0,
        False,
    )
    env = {"RTVOICE_DEMO_GRACE_S": "5", "RTVOICE_GRACE_S": "9", "RTVOICE_DEMO_CREATE": "true"}
    assert DemoSettings.from_args(_parser().parse_args([]), environ=env).grace_s == 5.0  # service name first
    assert DemoSettings.from_args(None, environ={"RTVOICE_GRACE_S": "9"}).grace_s == 9.0  # the older name
    args = _parser().parse_args(["--grace-s", "2", "--no-create", "--phrase", "a", "--phrase", "b c"])
    cfg = DemoSettings.from_args(args, environ=env)
    assert cfg.grace_s == 2.0 and cfg.create is False and cfg.phrase == ["a", "b c"]  # flags win
    assert DemoSettings.from_args(None, environ={"RTVOICE_DEMO_GRACE_S": ""}).grace_s == 30.0  # empty = unset


def test_complex_values_from_env_and_flags() -> None:
    env = {"RTVOICE_PULL_SECRETS": "a, b,,c", "RTVOICE_DEMO_RESOURCES": '{"requests": {"cpu": "1"}}'}
    cfg = DemoSettings.from_args(None, environ=env)
    assert cfg.pull_secrets == ["a", "b", "c"] and cfg.resources == {"requests": {"cpu": "1"}}
    args = _parser().parse_args(
        ["--resources", '{"limits": {"memory": "1Gi"}}', "-t", "x", "--log-level", "debug"]
    )
    cfg = DemoSettings.from_args(args, environ=env)
    assert cfg.resources == {"limits": {"memory": "1Gi"}} and cfg.token == "x" and cfg.log_level == "debug"
    assert DemoSettings.from_args(None, environ={}, grace_s=1.5, token=None).grace_s == 1.5  # given wins


def test_errors_name_the_flag_or_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^\$RTVOICE_GRACE_S: Input should be greater than or equal to 0"):
        DemoSettings.from_args(None, environ={"RTVOICE_GRACE_S": "-1"})
    with pytest.raises(ConfigError, match=r"^--grace-s: "):
        DemoSettings.from_args(_parser().parse_args(["--grace-s", "-1"]), environ={})
    with pytest.raises(ConfigError, match=r"\$RTVOICE_DEMO_RESOURCES: cannot parse"):
        DemoSettings.from_args(None, environ={"RTVOICE_DEMO_RESOURCES": "{nope"})
    with pytest.raises(ConfigError, match=r"\$RTVOICE_DEMO_MODE: Input should be 'fast' or 'safe'"):
        DemoSettings.from_args(None, environ={"RTVOICE_DEMO_MODE": "slow"})
    with pytest.raises(SystemExit):
        _parser().parse_args(["--mode", "slow"])  # choices come from the Literal
    with pytest.raises(SystemExit):
        _parser().parse_args(["--stage", "c"])  # or from Opt.choices
    with pytest.raises(ConfigError, match=r"--stage: 'c' is not one of a, b"):
        DemoSettings.from_args(None, environ={"RTVOICE_DEMO_STAGE": "c"})
    assert DemoSettings.from_args(None, environ={"RTVOICE_DEMO_STAGE": "b"}).stage == "b"
    with pytest.raises(ConfigError, match=r"^--log-level: "):
        DemoSettings.from_args(_parser().parse_args(["--log-level", "loud"]), environ={})


def test_help_shows_defaults_units_and_variables() -> None:
    text = " ".join(_parser().format_help().split())
    assert "--grace-s SECONDS" in text and "wait, s (default 30.0)" in text
    assert "$RTVOICE_DEMO_GRACE_S or $RTVOICE_GRACE_S" in text
    assert "--create, --no-create" in text and "{fast,safe}" in text and "--resources JSON" in text
    assert "secrets:" in text and "-t TOKEN, --token TOKEN" in text
    assert "--pull-secrets" not in text  # environment only


class SharedS3(ServerSettings):
    shared_env: ClassVar[bool] = True
    s3_bucket: str | None = Field(None, description="bucket")


class UsesShared(SharedS3):
    service: ClassVar[str] = "user"
    shared_env: ClassVar[bool] = False
    spool_dir: Path = Field(Path("s"), description="spool")


def test_shared_fields_keep_one_variable_name_in_every_service() -> None:
    assert UsesShared.env_names("s3_bucket") == ["RTVOICE_S3_BUCKET"]
    assert UsesShared.env_names("spool_dir") == ["RTVOICE_USER_SPOOL_DIR"]
    assert UsesShared.env_names("port") == ["RTVOICE_USER_PORT"]
    assert "RTVOICE_LOG_LEVEL" in UsesShared.all_env_names()


def test_namespace_has_defaults_and_a_given_default_still_beats_the_variable() -> None:
    args = _parser().parse_args([])
    assert args.grace_s == 30.0 and args.spool_dir == Path("spool") and args.phrase == []
    env = {"RTVOICE_DEMO_PORT": "8080"}
    assert DemoSettings.from_args(args, environ=env).port == 8080
    assert DemoSettings.from_args(_parser().parse_args(["--port", "0"]), environ=env).port == 0
    assert {
        "--create",
        "--no-create",
        "-t",
        "--token",
        "--phrase",
        "--llm-url",
        "--chat-url",
    } <= DemoSettings.flags()
    old = DemoSettings.from_args(_parser().parse_args(["--chat-url", "http://x"]), environ={})
    assert old.chat_url == "http://x" and DemoSettings.env_names("chat_url") == ["RTVOICE_DEMO_CHAT_URL"]
    assert "--pull-secrets" not in DemoSettings.flags() and "--no-no-auth" not in DemoSettings.flags()
    switched = DemoSettings.from_args(
        _parser().parse_args(["--no-auth"]), environ={"RTVOICE_DEMO_NO_AUTH": "0"}
    )
    assert switched.no_auth is True
    assert DemoSettings.from_args(_parser().parse_args([]), environ={"RTVOICE_DEMO_NO_AUTH": "1"}).no_auth


def test_direct_construction_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTVOICE_DEMO_PORT", "8081")
    assert DemoSettings().port == 8081
    assert DemoSettings(port=9).port == 9


class Required(ServerSettings):
    service: ClassVar[str] = "req"
    agent_file: Annotated[Path, Opt(own_env=False, metavar="FILE")] = Field(description="agent")


def test_a_required_field_is_a_required_flag() -> None:
    parser = argparse.ArgumentParser(prog="req")
    Required.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert Required.from_args(parser.parse_args(["--agent-file", "a.yaml"]), environ={}).agent_file == Path(
        "a.yaml"
    )


def _octal(text: str) -> int:
    return int(text, 8)


class Parsed(ServerSettings):
    service: ClassVar[str] = "parsed"
    mode: Annotated[int, Opt(parse=_octal, default_text="0700")] = Field(0o700, description="mode")


def test_a_parsed_flag_or_variable_names_itself_when_it_cannot_be_parsed() -> None:
    parser = argparse.ArgumentParser(prog="parsed")
    Parsed.add_arguments(parser)
    assert Parsed.from_args(parser.parse_args(["--mode", "0750"]), environ={}).mode == 0o750
    assert Parsed.from_args(parser.parse_args([]), environ={"RTVOICE_PARSED_MODE": "0640"}).mode == 0o640
    with pytest.raises(ConfigError, match=r"^--mode: invalid literal"):
        Parsed.from_args(parser.parse_args(["--mode", "rwx"]), environ={})
    with pytest.raises(ConfigError, match=r"^\$RTVOICE_PARSED_MODE: cannot parse 'rwx'"):
        Parsed.from_args(None, environ={"RTVOICE_PARSED_MODE": "rwx"})
    assert "(default 0700)" in parser.format_help()
