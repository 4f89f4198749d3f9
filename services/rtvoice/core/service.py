"""Process plumbing shared by every rtvoice service: logging with secret redaction, the ready line
that ``rtvoice up`` waits for, signal handling and the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

READY_PREFIX = "RTVOICE_READY "

_SECRET_PATTERNS = [
    re.compile(r"(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+"),
    re.compile(r"(AIza[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)((?:token|key|api_key|access_token)=)[^&\s\"']+"),
    re.compile(r"(rtv1\.)[A-Za-z0-9._\-]+"),
]


def redact(text: str) -> str:
    """Mask API keys, bearer tokens and caller tokens in ``text``."""
    for pat in _SECRET_PATTERNS:
        text = pat.sub(lambda m: m.group(1) + "***", text)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(service: str, level: str = "INFO") -> None:
    """One line per record on stderr, prefixed with the service name, secrets masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("websockets", "grpc", "asyncio", "httpx", "httpcore", "kopf", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def announce_ready(service: str, **info: Any) -> None:
    """Print the line ``rtvoice up`` waits for: ``RTVOICE_READY {"service": ..., "port": ...}``."""
    sys.stdout.write(READY_PREFIX + json.dumps({"service": service, **info}) + "\n")
    sys.stdout.flush()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set ``stop`` (graceful shutdown) instead of raising KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


#: Young-generation GC threshold of a service process (CPython's default is 700 allocations). A voice
#: service allocates a few dozen short-lived objects per 20 ms frame; at 700 a gen-0 collection ran every
#: ~10 frames and its older generations walked every long-lived object (settings, protobuf descriptors,
#: modules) — pauses that showed in the latency tail. See docs/performance.md.
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Move everything allocated so far (imports, settings) out of the collector's view and collect the
    young generation less often. Reference counting still frees almost everything at once; the cycle
    collector only has cycles to find."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run(main: Callable[[], Coroutine[Any, Any, int | None]] | Callable[[], Awaitable[int | None]]) -> int:
    """Run ``main`` on uvloop when available (a faster event loop than asyncio's own), after
    :func:`tune_gc`."""
    tune_gc()
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    result = runner(main())
    return int(result or 0)
