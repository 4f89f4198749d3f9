"""Prometheus metrics of every rtvoice service: the one home of their names, labels and buckets.

Each service process has one :class:`ServiceMetrics` (``service_metrics("bridge")``) with the same families
under its own prefix ``rtvoice_<service>_``:

- ``active_sessions`` (gauge; the bridge's ``rtvoice_bridge_active_sessions`` drives the autoscaler),
- ``sessions_started_total``, ``sessions_ended_total{reason}`` (end reasons as in the caller protocol),
- ``sessions_refused_total{code}`` (``full``, ``draining``, ``unauthenticated``),
- ``frames_total{direction="in"|"out"}`` (caller/bridge protocol messages through the service),
- ``errors_total{kind}`` (``ErrorFrame`` kinds sent, or service-specific kinds such as ``store``),
- ``event_loop_lag_ms`` (gauge; see ``rtvoice.core.capacity``), ``max_sessions`` (gauge, 0 = unlimited),
- ``first_audio_latency_ms`` (histogram: end of the caller's turn → first agent audio, ms).

The recorder adds ``rtvoice_recorder_spool_bytes`` and ``rtvoice_recorder_pending_uploads``.
:func:`serve_metrics` exposes the default registry at ``http://HOST:PORT/metrics`` (``--metrics-port``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

from rtvoice.core.errors import ERROR_KIND_NAMES
from rtvoice.core.latency import first_audio_latency_from_monotonic
from rtvoice.v1 import frames_pb2 as pb

#: First-audio latency buckets, ms: voice agents live between ~300 ms (good) and ~2 s (poor).
FIRST_AUDIO_BUCKETS_MS = (100, 200, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000, 3000, 5000, 10000)
#: The port the Helm chart and operator use for ``--metrics-port``.
CHART_METRICS_PORT = 9464
SERVICES = ("ingress", "bridge", "recorder", "localrt")


def active_sessions_metric(service: str) -> str:
    """Name of ``service``'s live-session gauge (``rtvoice_bridge_active_sessions`` drives autoscaling)."""
    return f"rtvoice_{service}_active_sessions"


class ServiceMetrics:
    """The metric families of one service (see the module docstring); use :func:`service_metrics`."""

    def __init__(self, service: str) -> None:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        p = f"rtvoice_{service}"
        self.service = service
        self.active_sessions = Gauge(active_sessions_metric(service), f"Sessions the {service} holds now")
        self.sessions_started = Counter(f"{p}_sessions_started", f"Sessions the {service} admitted")
        self.sessions_ended = Counter(
            f"{p}_sessions_ended", f"Sessions the {service} saw end, by end reason", ["reason"]
        )
        self.sessions_refused = Counter(
            f"{p}_sessions_refused", f"New sessions the {service} refused, by code", ["code"]
        )
        frames = Counter(f"{p}_frames", f"Protocol messages through the {service}", ["direction"])
        self.frames_in = frames.labels("in")
        self.frames_out = frames.labels("out")
        self.errors = Counter(f"{p}_errors", f"Errors of the {service}, by kind", ["kind"])
        self.loop_lag_ms = Gauge(f"{p}_event_loop_lag_ms", "Event-loop lag, median over 1 s, ms")
        self.max_sessions = Gauge(f"{p}_max_sessions", "Configured session capacity (0 = unlimited)")
        self.first_audio_ms = Histogram(
            f"{p}_first_audio_latency_ms",
            "End of the caller's turn to the first agent audio, ms",
            buckets=FIRST_AUDIO_BUCKETS_MS,
        )

    def session_started(self) -> None:
        self.sessions_started.inc()
        self.active_sessions.inc()

    def session_ended(self, reason: str) -> None:
        self.sessions_ended.labels(reason or "unspecified").inc()
        self.active_sessions.dec()

    def refused(self, code: str) -> None:
        self.sessions_refused.labels(code).inc()

    def error(self, kind: int | str) -> None:
        """Count an error: an ``ErrorKind`` value or a service-specific kind name."""
        name = ERROR_KIND_NAMES.get(kind, "unspecified") if isinstance(kind, int) else kind
        self.errors.labels(name).inc()


@cache
def service_metrics(service: str) -> ServiceMetrics:
    """The process's :class:`ServiceMetrics` of ``service`` (created once, on the default registry)."""
    return ServiceMetrics(service)


def unauthenticated_counter(service: str) -> Callable[[str], None]:
    """``on_refused(method)`` for the internal-auth interceptor: counts ``sessions_refused{code=
    "unauthenticated"}`` of ``service``."""
    metrics = service_metrics(service)
    return lambda _method: metrics.refused("unauthenticated")


class RecorderGauges:
    """``rtvoice_recorder_spool_bytes`` and ``rtvoice_recorder_pending_uploads``, computed at scrape time."""

    def __init__(self) -> None:
        self.spool_bytes = Gauge("rtvoice_recorder_spool_bytes", "Bytes in the recorder's spool directory")
        self.pending_uploads = Gauge(
            "rtvoice_recorder_pending_uploads", "Finalized archives waiting for the store"
        )


@cache
def recorder_gauges() -> RecorderGauges:
    return RecorderGauges()


def directory_bytes(root: Path) -> int:
    """Total size of the regular files under ``root`` (0 when it does not exist), bytes."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def bind_recorder_metrics(active: Callable[[], int], pending: Callable[[], int], spool_dir: Path) -> None:
    """Report the recorder's live sessions (``active()``), pending uploads (``pending()``) and the size of
    ``spool_dir``, each computed when scraped (the last recorder bound in a process wins)."""
    service_metrics("recorder").active_sessions.set_function(active)
    gauges = recorder_gauges()
    gauges.pending_uploads.set_function(pending)
    gauges.spool_bytes.set_function(lambda: directory_bytes(spool_dir))


class FirstAudioClock:
    """First-audio latency of one session as a service relaying frames sees it: the caller's turn ends
    (server ``speech_stopped``, client ``text`` / ``end_of_turn``) → the next agent ``audio`` frame goes
    out; observed into ``histogram`` in ms. Feed it every frame with :meth:`client` / :meth:`server`."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self._turn_end: float | None = None

    def client(self, frame: pb.ClientFrame) -> None:
        if frame.WhichOneof("frame") in ("text", "end_of_turn"):
            self._turn_end = time.monotonic()

    def server(self, frame: pb.ServerFrame) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "speech_stopped":
            self._turn_end = time.monotonic()
        elif kind == "audio" and self._turn_end is not None:
            self.histogram.observe(first_audio_latency_from_monotonic(self._turn_end, time.monotonic()))
            self._turn_end = None
        elif kind in ("response_done", "clear_audio"):
            self._turn_end = None


def serve_metrics(host: str, port: int | None) -> int | None:
    """Start the ``/metrics`` HTTP server on ``host:port`` in a daemon thread; returns the bound port
    (``None`` when ``port`` is ``None``: metrics off). Raises ``OSError`` when the port is taken."""
    if port is None:
        return None
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return int(server.server_port)
