"""``rtvoice ingress`` (the caller-facing server) and ``rtvoice token`` (mint a caller token)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from rtvoice.core.internal_auth import credentials_from, warn_if_open
from rtvoice.core.service import (
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.core.shutdown import drain_stop_timeout_s
from rtvoice.ingress.auth import SECRET_ENV, load_secret, mint_token
from rtvoice.ingress.routing import parse_agent_path
from rtvoice.ingress.server import IngressConfig, IngressServer
from rtvoice.ingress.settings import IngressSettings

log = logging.getLogger("rtvoice.ingress")
#: The configuration model of each command (``tests/operator/test_chart_config_schema.py`` reads it).
SETTINGS = {"ingress": IngressSettings}


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
    )
    IngressSettings.add_arguments(p)
    p.set_defaults(func=_ingress)

    t = subparsers.add_parser(
        "token",
        help="mint a caller token for an agent",
        description=(
            "Print a caller token (rtv1.<payload>.<signature>, HMAC-SHA256) that lets a caller open sessions "
            "with agent NAMESPACE/NAME until it expires. Use it as 'Authorization: Bearer TOKEN' or "
            f"'?token=TOKEN'. The secret comes from --auth-secret-file or ${SECRET_ENV} and must match the "
            "ingress's. Exit 0 on success, 1 when no usable secret is configured, 2 when NAMESPACE or NAME "
            "is not a Kubernetes DNS-1123 label (or '*')."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--namespace", default="default", help="agent namespace ('*' = any)")
    t.add_argument("--name", required=True, help="agent name ('*' = any agent of the namespace)")
    t.add_argument("--ttl", type=float, default=3600.0, help="validity, s")
    t.add_argument("--subject", default="", help="who the token is for (recorded as session metadata)")
    t.add_argument("--auth-secret-file", metavar="FILE", help=f"HMAC secret (else ${SECRET_ENV})")
    t.set_defaults(func=_token)


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"rtvoice: {message}\n")
    return code


def token_scope_problem(namespace: str, name: str) -> str | None:
    """Why ``namespace``/``name`` cannot be a token scope (``None`` when they can): each must be ``*`` or
    what an agent URL accepts — a Kubernetes DNS-1123 label (1-63 lower-case letters, digits and ``-``,
    starting and ending with a letter or digit)."""
    for what, value in (("namespace", namespace), ("name", name)):
        if value != "*" and parse_agent_path(f"/v1/agents/{value}/{value}") is None:
            return (
                f"agent {what} {value!r} is not a valid Kubernetes name: use 1-63 lower-case letters, "
                "digits and '-', starting and ending with a letter or digit (or '*' for any); "
                "no caller URL could use this token"
            )
    return None


def _token(args: argparse.Namespace) -> int:
    problem = token_scope_problem(args.namespace, args.name)
    if problem is not None:
        return _fail(f"token: {problem}", 2)
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
    """The :class:`IngressConfig` of parsed ``rtvoice ingress`` arguments and ``RTVOICE_INGRESS_*``
    variables; raises ``ValueError`` (``ConfigError`` naming the flag or variable) with a one-line
    message for unusable values or combinations."""
    return ingress_config(IngressSettings.from_args(args))


def ingress_config(cfg: IngressSettings) -> IngressConfig:
    """The server configuration of ``cfg``; raises ``ValueError`` when no caller-token secret is
    configured (and ``--no-auth`` is not given) or the secret file cannot be read."""
    secret = load_secret(cfg.auth_secret_file)
    if secret is None and not cfg.no_auth:
        raise ValueError(f"no auth secret: give --auth-secret-file FILE, set {SECRET_ENV}, or use --no-auth")
    return IngressConfig(
        bridge=cfg.bridge,
        bridge_address_pattern=cfg.bridge_address_pattern,
        host=cfg.host,
        port=cfg.port,
        auth_secret=secret,
        no_auth=cfg.no_auth,
        allowed_origins=tuple(cfg.allowed_origin),
        limits=cfg.limits(),
        max_sessions=cfg.max_sessions,
        drain_timeout_s=cfg.drain_timeout_s,
        connect_timeout_s=cfg.connect_timeout_s,
        ready_timeout_s=cfg.ready_timeout_s,
        default_agent=cfg.default_agent,
        socket_send_buffer_bytes=cfg.socket_send_buffer_bytes,
        bridge_cluster_domain=cfg.bridge_cluster_domain,
        internal_credentials=credentials_from(cfg.internal_token_file),
        max_loop_lag_ms=cfg.max_loop_lag_ms,
        metrics_port=cfg.metrics_port,
        reuse_port=cfg.reuse_port,
    )


def _ingress(args: argparse.Namespace) -> int:
    try:
        cfg = IngressSettings.from_args(args)
        setup_logging("ingress", cfg.log_level)
        if cfg.workers > 1:
            ingress_config(cfg)  # the same checks as a worker's, before any process starts
            from rtvoice.core.workers import WorkerGroup

            group = WorkerGroup("ingress", sys.argv[sys.argv.index("ingress") + 1 :], cfg.host, cfg.port)
            stop_s = drain_stop_timeout_s(cfg.drain_timeout_s)
            return run(
                lambda: group.serve(
                    cfg.workers, cfg.metrics_port, stop_timeout_s=stop_s, private_env=(SECRET_ENV,)
                )
            )
        server = IngressServer(ingress_config(cfg))
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
    warn_if_open("ingress", server.config.internal_credentials)
    announce_ready("ingress", port=server.port, url=server.url, metrics_port=server.metrics_port)
    await stop.wait()
    await server.drain()
    await server.close()
    log.info("ingress stopped")
    return 0
