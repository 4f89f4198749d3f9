"""The configuration every rtvoice server shares, as models of :mod:`rtvoice.core.config`.

:class:`ServerSettings` (``--host``, ``--port`` and :class:`LogSettings`' ``--log-level``),
:class:`MetricsSettings` (``--metrics-port``), :class:`InternalAuthSettings` (``--internal-token-file``),
:class:`CapacitySettings` (``--max-loop-lag-ms``) and :class:`DrainSettings` (``--drain-timeout-s``) are
combined by each service's own model, e.g. ``class RecorderSettings(ServerSettings, MetricsSettings,
InternalAuthSettings)``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from rtvoice.core.capacity import DEFAULT_MAX_LOOP_LAG_MS
from rtvoice.core.config import Opt, ServiceSettings
from rtvoice.core.internal_auth import TOKEN_FILE_ENV
from rtvoice.core.metrics import CHART_METRICS_PORT
from rtvoice.core.shutdown import DRAIN_TIMEOUT_S


class LogSettings(ServiceSettings):
    """``--log-level``, the same for every rtvoice service."""

    log_level: Annotated[str, Opt(env=("RTVOICE_LOG_LEVEL",), metavar="LEVEL")] = Field(
        "INFO", pattern=r"(?i)^(debug|info|warning|error)$", description="DEBUG, INFO, WARNING or ERROR"
    )


class ServerSettings(LogSettings):
    """``--host``, ``--port`` and ``--log-level``, the same for every rtvoice server."""

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(0, ge=0, le=65535, description="port to listen on; 0 = any free port")


class MetricsSettings(ServiceSettings):
    """``--metrics-port``: Prometheus metrics over HTTP (off unless given)."""

    metrics_port: Annotated[int | None, Opt(metavar="PORT")] = Field(
        None,
        ge=0,
        le=65535,
        description="serve Prometheus metrics at http://HOST:PORT/metrics (default: off; 0 = any free port, "
        f"reported as metrics_port in the RTVOICE_READY line; the chart uses {CHART_METRICS_PORT})",
    )


class InternalAuthSettings(ServiceSettings):
    """``--internal-token-file``: the token shared by rtvoice services on their gRPC calls."""

    internal_token_file: Annotated[str | None, Opt(own_env=False, env=(TOKEN_FILE_ENV,), metavar="FILE")] = (
        Field(
            None,
            description="shared token between rtvoice services; re-read when it changes. Without it "
            "internal gRPC calls are not authenticated",
        )
    )


class CapacitySettings(ServiceSettings):
    """``--max-loop-lag-ms``: the event-loop lag above which a server counts as full."""

    max_loop_lag_ms: float = Field(
        DEFAULT_MAX_LOOP_LAG_MS,
        ge=0,
        description="event-loop lag (median over 1 s) above which the service counts as full and refuses "
        "new sessions, ms (0 = ignore)",
    )


class DrainSettings(ServiceSettings):
    """``--drain-timeout-s``: what a server gives live sessions on SIGTERM."""

    drain_timeout_s: float = Field(
        DRAIN_TIMEOUT_S,
        ge=0,
        description="on SIGTERM, how long live sessions may continue before they are told to reconnect, s",
    )
