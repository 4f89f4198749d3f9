"""Configuration of ``rtvoice ingress``: one model giving its flags, its ``RTVOICE_INGRESS_*`` variables
and the checks (see :mod:`rtvoice.core.config`). The caller-token secret comes from ``--auth-secret-file``
or ``$RTVOICE_AUTH_SECRET`` (:func:`rtvoice.ingress.auth.load_secret`)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from rtvoice.core.config import Opt
from rtvoice.core.server_settings import (
    CapacitySettings,
    DrainSettings,
    InternalAuthSettings,
    MetricsSettings,
    ServerSettings,
)
from rtvoice.ingress.gate import origin_key
from rtvoice.ingress.limits import Limits

_D = Limits()
_ROUTES = ("--bridge", "--bridge-address-pattern", "--bridge-cluster-domain")


class IngressSettings(ServerSettings, DrainSettings, CapacitySettings, MetricsSettings, InternalAuthSettings):
    """``rtvoice ingress``."""

    service: ClassVar[str] = "ingress"

    bridge: Annotated[str | None, Opt(metavar="TARGET")] = Field(
        None,
        description="the realtime-bridge(s) of every agent: HOST:PORT, a comma list HOST:PORT,HOST:PORT, or "
        "dns:///NAME:PORT (every address of NAME is one bridge; re-resolved every 5 s)",
    )
    bridge_address_pattern: Annotated[str | None, Opt(metavar="PATTERN")] = Field(
        None,
        description="per-agent bridge address with {namespace} and {name}, e.g. "
        "'rtvoice-bridge-{name}.{namespace}.svc.cluster.local:50051' (any TARGET form of --bridge)",
    )
    bridge_cluster_domain: Annotated[str | None, Opt(metavar="DOMAIN")] = Field(
        None,
        description="cluster mode: each agent's bridges are the pods of its headless Service "
        "dns:///rtvoice-bridge-NAME-headless.NAMESPACE.svc.DOMAIN:50051 (DOMAIN e.g. cluster.local)",
    )
    auth_secret_file: Annotated[str | None, Opt(metavar="FILE")] = Field(
        None, description="HMAC secret for caller tokens (else $RTVOICE_AUTH_SECRET)"
    )
    allowed_origin: Annotated[list[str], Opt(metavar="ORIGIN")] = Field(
        default_factory=list,
        description="browser Origin allowed to open sessions, e.g. https://app.example.com; scheme, host and "
        "port must all match (repeatable; default: same origin only, the scheme taken from "
        "X-Forwarded-Proto behind a TLS proxy; clients sending no Origin are always allowed)",
    )
    no_auth: Annotated[bool, Opt(switch=True)] = Field(
        False, description="accept callers without a token (development only)"
    )
    default_agent: Annotated[str, Opt(metavar="NS/NAME")] = Field(
        "default/assistant", description="agent the web page talks to when its URL has no ?agent="
    )
    max_session_s: float = Field(_D.max_session_s, gt=0, description="maximum session length, s")
    idle_timeout_s: float = Field(
        _D.idle_timeout_s, gt=0, description="end a session when the caller sends nothing for this long, s"
    )
    max_frame_bytes: int = Field(_D.max_frame_bytes, gt=0, description="largest binary audio message, bytes")
    max_text_bytes: int = Field(_D.max_text_bytes, gt=0, description="largest JSON message, bytes")
    max_frames_per_s: float = Field(
        _D.max_frames_per_s,
        gt=0,
        description="inbound messages per second per session (burst: one second's worth)",
    )
    max_outbound_audio_ms: float = Field(
        _D.max_outbound_audio_ms,
        gt=0,
        description="agent audio queued for a slow caller before the oldest is dropped, ms",
    )
    socket_send_buffer_bytes: int = Field(
        65536,
        ge=0,
        description="kernel send buffer per caller socket, bytes (0 = OS autotuning: megabytes a slow "
        "caller hides)",
    )
    max_sessions: int = Field(
        0, ge=0, description="concurrent sessions per worker process (0 = unlimited; 503 above)"
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="worker processes sharing the port (SO_REUSEPORT: the kernel spreads callers over "
        "them); one per core to use every core. Each worker's metrics port is --metrics-port + its index",
    )
    reuse_port: Annotated[bool, Opt(switch=True)] = Field(
        False, description="bind with SO_REUSEPORT (set for each worker by --workers)"
    )
    connect_timeout_s: float = Field(
        3.0, gt=0, description="how long to wait for an agent's bridge to accept a connection, s"
    )
    ready_timeout_s: float = Field(
        15.0, gt=0, description="how long to wait for the bridge's provider session to get ready, s"
    )

    @model_validator(mode="after")
    def _one_route_and_real_origins(self) -> Self:
        routes = [self.bridge, self.bridge_address_pattern, self.bridge_cluster_domain]
        given = [flag for flag, value in zip(_ROUTES, routes, strict=True) if value]
        if not given:
            raise ValueError(
                "give --bridge TARGET, --bridge-address-pattern PATTERN or --bridge-cluster-domain DOMAIN"
            )
        if len(given) > 1:
            raise ValueError(f"give only one of {', '.join(_ROUTES)} (got {', '.join(given)})")
        bad = [o for o in self.allowed_origin if o != "*" and origin_key(o) is None]
        if bad:
            raise ValueError(
                f"--allowed-origin {bad[0]!r} is not an origin; give scheme://host[:port], "
                "e.g. https://app.example.com, or '*'"
            )
        return self

    def limits(self) -> Limits:
        """The per-session limits."""
        return Limits(
            max_session_s=self.max_session_s,
            idle_timeout_s=self.idle_timeout_s,
            max_frames_per_s=self.max_frames_per_s,
            max_frame_bytes=self.max_frame_bytes,
            max_text_bytes=self.max_text_bytes,
            max_outbound_audio_ms=self.max_outbound_audio_ms,
        )
