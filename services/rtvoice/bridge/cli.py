"""``rtvoice bridge``: serve one agent's realtime-bridge (gRPC ``RealtimeBridge.Converse`` + health)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from typing import Any

from rtvoice.bridge.server import BridgeConfig, BridgeServer, recorder_link
from rtvoice.bridge.settings import BridgeSettings
from rtvoice.core.config import ConfigError
from rtvoice.core.internal_auth import credentials_from, warn_if_open
from rtvoice.core.metrics import serve_metrics
from rtvoice.core.secret_file import SecretFile
from rtvoice.core.service import (
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.core.settings import DEFAULT_API_KEY_ENV, AgentSettings, SettingsError, load_agent_file

API_KEY_ENV = "RTVOICE_PROVIDER_API_KEY"
#: The configuration model of each command (``tests/operator/test_chart_config_schema.py`` reads it).
SETTINGS = {"bridge": BridgeSettings}


def resolve_api_key(settings: AgentSettings, environ: dict[str, str] | None = None) -> str | None:
    """The provider API key: ``RTVOICE_PROVIDER_API_KEY``, else the variable named by
    ``credentials.apiKeyEnv``, else ``OPENAI_API_KEY`` / ``GEMINI_API_KEY`` by provider (none for local)."""
    env = os.environ if environ is None else environ
    for name in (API_KEY_ENV, settings.credentials.api_key_env, DEFAULT_API_KEY_ENV.get(settings.provider)):
        if name and env.get(name):
            return env[name]
    return None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bridge",
        help="serve an agent's realtime-bridge (gRPC RealtimeBridge.Converse)",
        description=(
            "Serve the realtime-bridge of one agent: each gRPC Converse stream becomes one provider session "
            "(OpenAI Realtime, Gemini Live or the local engine), with every frame teed to the recorder. "
            f"The API key comes from ${API_KEY_ENV}, else credentials.apiKeyEnv, else OPENAI_API_KEY / "
            "GEMINI_API_KEY. Also serves grpc.health.v1.Health. On SIGTERM it drains: NOT_SERVING, new "
            "sessions refused, live ones get --drain-timeout-s, then are asked to reconnect."
        ),
    )
    BridgeSettings.add_arguments(p)
    p.set_defaults(func=main)


def _scaling_config(cfg: BridgeSettings) -> dict[str, Any]:
    """``BridgeConfig`` fields of the scaling flags; raises ``ValueError`` for an unreadable file."""
    creds = credentials_from(cfg.internal_token_file)
    key_file = SecretFile(cfg.api_key_file) if cfg.api_key_file else None
    if key_file is not None:
        key_file.value()  # fail at start, naming the file
    return {
        "max_sessions": cfg.max_sessions,
        "max_loop_lag_ms": cfg.max_loop_lag_ms,
        "internal_credentials": creds,
        "recorder_factory": functools.partial(recorder_link, credentials=creds),
        "api_key_file": key_file,
    }


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"rtvoice bridge: {message}\n")
    return code


def main(args: argparse.Namespace) -> int:
    """Entry point of ``rtvoice bridge``; returns the exit code."""
    try:
        cfg = BridgeSettings.from_args(args)
    except ConfigError as err:
        return _fail(str(err))
    setup_logging("bridge", cfg.log_level)
    try:
        doc = load_agent_file(cfg.agent_file)  # the schema and the provider rules (rtvoice.core.rules)
    except SettingsError as err:
        return _fail(str(err))
    settings = doc.spec
    try:
        scaling = _scaling_config(cfg)
    except ValueError as err:
        return _fail(str(err))
    api_key = resolve_api_key(settings)
    if settings.provider != "local" and not api_key and scaling["api_key_file"] is None:
        names = [API_KEY_ENV, settings.credentials.api_key_env or DEFAULT_API_KEY_ENV[settings.provider]]
        return _fail(f"no API key for provider {settings.provider}: set {' or '.join(names)}")
    if settings.provider == "local" and not (cfg.provider_url or settings.base_url):
        return _fail("provider local needs --provider-url ws://HOST:PORT/v1/realtime (the local engine)")
    config = BridgeConfig(
        settings=settings,
        api_key=api_key,
        provider_url=cfg.provider_url,
        recorder_target=cfg.recorder,
        agent_name=doc.name,
        agent_namespace=doc.namespace,
        **scaling,
    )
    return run(lambda: serve(config, cfg.host, cfg.port, cfg.drain_timeout_s, cfg.metrics_port))


async def serve(
    config: BridgeConfig, host: str, port: int, drain_timeout_s: float, metrics_port: int | None = None
) -> int:
    """Run the bridge until SIGINT/SIGTERM, then drain and stop; returns the exit code."""
    server = BridgeServer(config)
    try:
        bound = await server.start(host, port)
        metrics_bound = serve_metrics(host, metrics_port)
    except (RuntimeError, OSError) as err:
        return _fail(f"cannot listen on {host}:{port} (metrics {metrics_port}): {err}", 1)
    warn_if_open("bridge", config.internal_credentials)
    stop = asyncio.Event()
    install_stop_signals(stop)
    announce_ready(
        "bridge",
        port=bound,
        agent=f"{config.agent_namespace}/{config.agent_name}",
        provider=config.settings.provider,
        recorder=config.recorder_target,
        metrics_port=metrics_bound,
    )
    await stop.wait()
    ended = await server.drain(drain_timeout_s)
    await server.stop()
    if ended:
        sys.stderr.write(f"rtvoice bridge: drained; {ended} session(s) asked to reconnect\n")
    return 0
