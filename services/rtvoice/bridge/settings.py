"""Configuration of ``rtvoice bridge``: one model giving its flags, its ``RTVOICE_*`` variables and the
checks (see :mod:`rtvoice.core.config`). The agent itself comes from ``--agent-file`` (a VoiceAgent,
checked by :mod:`rtvoice.core.settings`); the provider API key from the variables of
:func:`rtvoice.bridge.cli.resolve_api_key` or ``--api-key-file``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from rtvoice.core.config import Opt
from rtvoice.core.server_settings import (
    CapacitySettings,
    DrainSettings,
    InternalAuthSettings,
    MetricsSettings,
    ServerSettings,
)

API_KEY_FILE_ENV = "RTVOICE_API_KEY_FILE"


class BridgeSettings(ServerSettings, DrainSettings, CapacitySettings, MetricsSettings, InternalAuthSettings):
    """``rtvoice bridge``."""

    service: ClassVar[str] = "bridge"

    agent_file: Annotated[Path, Opt(own_env=False, metavar="FILE")] = Field(
        description="VoiceAgent YAML/JSON file (or a bare spec mapping)"
    )
    recorder: Annotated[str | None, Opt(metavar="HOST:PORT")] = Field(
        None, pattern=r"^\S+:\d+$", description="recorder gRPC address (default: off)"
    )
    provider_url: Annotated[str | None, Opt(metavar="URL")] = Field(
        None,
        pattern=r"^(wss?|https?)://",
        description="provider WebSocket URL overriding baseUrl, e.g. ws://127.0.0.1:PORT/v1/realtime "
        "(the local engine)",
    )
    max_sessions: int = Field(
        0,
        ge=0,
        description="concurrent sessions (0 = unlimited); above it new ones are refused with code 'full'",
    )
    api_key_file: Annotated[Path | None, Opt(own_env=False, env=(API_KEY_FILE_ENV,), metavar="FILE")] = Field(
        None,
        description="provider API key file; re-read when it changes, so a rotated Secret reaches new "
        "sessions without a restart. Takes precedence over the key variables",
    )
