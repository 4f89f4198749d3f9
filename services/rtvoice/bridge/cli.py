"""``rtvoice bridge``: serve one agent's realtime-bridge (gRPC ``RealtimeBridge.Converse`` + health)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from rtvoice.bridge.server import BridgeConfig, BridgeServer
from rtvoice.core.service import (
    add_server_arguments,
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.core.settings import DEFAULT_API_KEY_ENV, AgentSettings, SettingsError, load_agent_file

API_KEY_ENV = "RTVOICE_PROVIDER_API_KEY"


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
    p.add_argument("--agent-file", required=True, help="VoiceAgent YAML/JSON file (or a bare spec mapping)")
    p.add_argument(
        "--recorder", metavar="HOST:PORT", default=None, help="recorder gRPC address (default: off)"
    )
    p.add_argument(
        "--provider-url",
        default=None,
        help="provider WebSocket URL overriding baseUrl, e.g. ws://127.0.0.1:PORT/v1/realtime (local engine)",
    )
    add_server_arguments(p)
    p.add_argument(
        "--drain-timeout-s",
        type=float,
        default=30.0,
        help="on SIGTERM, how long live sessions may continue before being ended (default 30)",
    )
    p.set_defaults(func=main)


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"rtvoice bridge: {message}\n")
    return code


def main(args: argparse.Namespace) -> int:
    """Entry point of ``rtvoice bridge``; returns the exit code."""
    setup_logging("bridge", args.log_level)
    try:
        doc = load_agent_file(args.agent_file)
    except SettingsError as err:
        return _fail(str(err))
    settings = doc.spec
    api_key = resolve_api_key(settings)
    if settings.provider != "local" and not api_key:
        names = [API_KEY_ENV, settings.credentials.api_key_env or DEFAULT_API_KEY_ENV[settings.provider]]
        return _fail(f"no API key for provider {settings.provider}: set {' or '.join(names)}")
    if settings.provider == "local" and not (args.provider_url or settings.base_url):
        return _fail("provider local needs --provider-url ws://HOST:PORT/v1/realtime (the local engine)")
    config = BridgeConfig(
        settings=settings,
        api_key=api_key,
        provider_url=args.provider_url,
        recorder_target=args.recorder,
        agent_name=doc.name,
        agent_namespace=doc.namespace,
    )
    return run(lambda: serve(config, args.host, args.port, args.drain_timeout_s))


async def serve(config: BridgeConfig, host: str, port: int, drain_timeout_s: float) -> int:
    """Run the bridge until SIGINT/SIGTERM, then drain and stop; returns the exit code."""
    server = BridgeServer(config)
    try:
        bound = await server.start(host, port)
    except RuntimeError as err:
        return _fail(f"cannot listen on {host}:{port}: {err}", 1)
    stop = asyncio.Event()
    install_stop_signals(stop)
    announce_ready(
        "bridge",
        port=bound,
        agent=f"{config.agent_namespace}/{config.agent_name}",
        provider=config.settings.provider,
        recorder=config.recorder_target,
    )
    await stop.wait()
    ended = await server.drain(drain_timeout_s)
    await server.stop()
    if ended:
        sys.stderr.write(f"rtvoice bridge: drained; {ended} session(s) asked to reconnect\n")
    return 0
