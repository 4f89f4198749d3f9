"""``rtvoice ingress`` (the caller-facing server) and ``rtvoice token`` (mint a caller token)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from rtvoice.core.service import (
    add_server_arguments,
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.ingress.auth import SECRET_ENV, load_secret, mint_token
from rtvoice.ingress.limits import Limits
from rtvoice.ingress.server import IngressConfig, IngressServer

log = logging.getLogger("rtvoice.ingress")

_D = Limits()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ingress`` and ``token`` to the ``rtvoice`` command."""
    p = subparsers.add_parser(
        "ingress",
        help="serve callers: the web page and the caller WebSocket (protocol v1), relayed to agent bridges",
        description=(
            "Serve the web page at / and caller sessions at ws://HOST:PORT/v1/agents/NAMESPACE/NAME "
            "(docs/caller-protocol.md), relayed over gRPC to the agent's realtime-bridge. Callers present a "
            f"token (rtvoice token) signed with the secret from --auth-secret-file or ${SECRET_ENV}. "
            "On SIGTERM new sessions get HTTP 503, live ones may finish for --drain-timeout-s, then they are "
            'told to reconnect. Prints RTVOICE_READY {"service": "ingress", "port": ..., "url": ...}.'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_server_arguments(p)
    route = p.add_mutually_exclusive_group()
    route.add_argument(
        "--bridge", metavar="HOST:PORT", help="one realtime-bridge for every agent (local mode)"
    )
    route.add_argument(
        "--bridge-address-pattern",
        metavar="PATTERN",
        help="per-agent bridge address with {namespace} and {name}, e.g. "
        "'rtvoice-bridge-{name}.{namespace}.svc.cluster.local:50051' (cluster mode)",
    )
    p.add_argument(
        "--auth-secret-file", metavar="FILE", help=f"HMAC secret for caller tokens (else ${SECRET_ENV})"
    )
    p.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser Origin allowed to open sessions, e.g. https://app.example.com (repeatable; "
        "default: same origin only; clients sending no Origin are always allowed)",
    )
    p.add_argument("--no-auth", action="store_true", help="accept callers without a token (development only)")
    p.add_argument(
        "--default-agent",
        default="default/assistant",
        metavar="NS/NAME",
        help="agent the web page talks to when its URL has no ?agent=",
    )
    p.add_argument("--max-session-s", type=float, default=_D.max_session_s, help="maximum session length, s")
    p.add_argument(
        "--idle-timeout-s",
        type=float,
        default=_D.idle_timeout_s,
        help="end a session when the caller sends nothing for this long, s",
    )
    p.add_argument(
        "--max-frame-bytes", type=int, default=_D.max_frame_bytes, help="largest binary audio message, bytes"
    )
    p.add_argument(
        "--max-text-bytes", type=int, default=_D.max_text_bytes, help="largest JSON message, bytes"
    )
    p.add_argument(
        "--max-frames-per-s",
        type=float,
        default=_D.max_frames_per_s,
        help="inbound messages per second per session (burst: one second's worth)",
    )
    p.add_argument(
        "--max-outbound-audio-ms",
        type=float,
        default=_D.max_outbound_audio_ms,
        help="agent audio queued for a slow caller before the oldest is dropped, ms",
    )
    p.add_argument(
        "--socket-send-buffer-bytes",
        type=int,
        default=65536,
        help="kernel send buffer per caller socket (0 = OS autotuning: megabytes a slow caller hides)",
    )
    p.add_argument(
        "--max-sessions", type=int, default=0, help="concurrent sessions (0 = unlimited; 503 above)"
    )
    p.add_argument(
        "--drain-timeout-s",
        type=float,
        default=30.0,
        help="on SIGTERM, how long live sessions may continue, s",
    )
    p.add_argument(
        "--connect-timeout-s",
        type=float,
        default=3.0,
        help="how long to wait for an agent's bridge to accept a connection, s",
    )
    p.add_argument(
        "--ready-timeout-s",
        type=float,
        default=15.0,
        help="how long to wait for the bridge's provider session to get ready, s",
    )
    p.set_defaults(func=_ingress)

    t = subparsers.add_parser(
        "token",
        help="mint a caller token for an agent",
        description=(
            "Print a caller token (rtv1.<payload>.<signature>, HMAC-SHA256) that lets a caller open sessions "
            "with agent NAMESPACE/NAME until it expires. Use it as 'Authorization: Bearer TOKEN' or "
            f"'?token=TOKEN'. The secret comes from --auth-secret-file or ${SECRET_ENV} and must match the "
            "ingress's. Exit 0 on success, 1 when no usable secret is configured."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--namespace", default="default", help="agent namespace ('*' = any)")
    t.add_argument("--name", required=True, help="agent name ('*' = any agent of the namespace)")
    t.add_argument("--ttl", type=float, default=3600.0, help="validity, s")
    t.add_argument("--subject", default="", help="who the token is for (recorded as session metadata)")
    t.add_argument("--auth-secret-file", metavar="FILE", help=f"HMAC secret (else ${SECRET_ENV})")
    t.set_defaults(func=_token)


def _fail(message: str) -> int:
    sys.stderr.write(f"rtvoice: {message}\n")
    return 1


def _token(args: argparse.Namespace) -> int:
    try:
        secret = load_secret(args.auth_secret_file)
        if secret is None:
            return _fail(f"no auth secret: give --auth-secret-file FILE or set {SECRET_ENV}")
        token = mint_token(secret, args.namespace, args.name, args.ttl, subject=args.subject)
    except ValueError as err:
        return _fail(str(err))
    sys.stdout.write(token + "\n")
    return 0


def config_from_args(args: argparse.Namespace) -> IngressConfig:
    """The :class:`IngressConfig` of parsed ``rtvoice ingress`` arguments; raises ``ValueError`` with a
    one-line message for unusable combinations."""
    if not args.bridge and not args.bridge_address_pattern:
        raise ValueError("give --bridge HOST:PORT or --bridge-address-pattern PATTERN")
    secret = load_secret(args.auth_secret_file)
    if secret is None and not args.no_auth:
        raise ValueError(f"no auth secret: give --auth-secret-file FILE, set {SECRET_ENV}, or use --no-auth")
    limits = Limits(
        max_session_s=args.max_session_s,
        idle_timeout_s=args.idle_timeout_s,
        max_frames_per_s=args.max_frames_per_s,
        max_frame_bytes=args.max_frame_bytes,
        max_text_bytes=args.max_text_bytes,
        max_outbound_audio_ms=args.max_outbound_audio_ms,
    )
    if (
        min(limits.max_session_s, limits.idle_timeout_s, limits.max_frames_per_s) <= 0
        or min(limits.max_frame_bytes, limits.max_text_bytes) <= 0
    ):
        raise ValueError("limits must be positive")
    return IngressConfig(
        bridge=args.bridge,
        bridge_address_pattern=args.bridge_address_pattern,
        host=args.host,
        port=args.port,
        auth_secret=secret,
        no_auth=args.no_auth,
        allowed_origins=tuple(args.allowed_origin),
        limits=limits,
        max_sessions=args.max_sessions,
        drain_timeout_s=args.drain_timeout_s,
        connect_timeout_s=args.connect_timeout_s,
        ready_timeout_s=args.ready_timeout_s,
        default_agent=args.default_agent,
        socket_send_buffer_bytes=args.socket_send_buffer_bytes,
    )


def _ingress(args: argparse.Namespace) -> int:
    setup_logging("ingress", args.log_level)
    try:
        config = config_from_args(args)
        server = IngressServer(config)
    except ValueError as err:
        return _fail(f"ingress: {err}")
    return run(lambda: _serve(server))


async def _serve(server: IngressServer) -> int:
    try:
        await server.start()
    except OSError as err:
        await server.close()
        return _fail(
            f"ingress: cannot listen on {server.config.host}:{server.config.port}: {err.strerror or err}"
        )
    stop = asyncio.Event()
    install_stop_signals(stop)
    announce_ready("ingress", port=server.port, url=server.url)
    await stop.wait()
    await server.drain()
    await server.close()
    log.info("ingress stopped")
    return 0
