"""``rtvoice local-realtime``: the offline speech-to-speech engine (OpenAI Realtime GA protocol)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from rtvoice.core.metrics import serve_metrics
from rtvoice.core.service import (
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.localrt.options import EngineOptions
from rtvoice.localrt.responder import ResponderError
from rtvoice.localrt.server import LocalRealtimeServer
from rtvoice.localrt.settings import EngineSettings
from rtvoice.localrt.voices import UnsupportedVoiceError, list_voices

log = logging.getLogger("rtvoice.localrt")

#: The configuration model of each command (``tests/operator/test_chart_config_schema.py`` reads it).
SETTINGS = {"local-realtime": EngineSettings}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``local-realtime`` to the ``rtvoice`` command."""
    p = subparsers.add_parser(
        "local-realtime",
        help="offline speech-to-speech engine speaking the OpenAI Realtime GA protocol",
        description=(
            "Serve ws://HOST:PORT/v1/realtime?model=... with the OpenAI Realtime GA protocol, built from "
            "parts chosen per stage: recognition (--stt), answers (--llm: echo, the bundled offline model, "
            "or a chat-completions URL) and speech (--tts: espeak-ng / Piper by voice, or a speech URL). "
            'Prints RTVOICE_READY {"service": "local-realtime", "port": ..., "url": ...}.'
        ),
    )
    EngineSettings.add_arguments(p)
    p.add_argument("--list-voices", action="store_true", help="print the local speech stage's voices, exit")
    p.set_defaults(func=_main)


def _options(args: argparse.Namespace) -> EngineOptions:
    """The engine options of parsed flags and the ``RTVOICE_LOCALRT_*`` / stage key variables.

    Raises ``ConfigError`` (a ``ValueError``) naming a bad flag or variable, ``OptionsError`` for a stage
    without its URL, ``OSError`` when ``--phrases-file`` cannot be read."""
    return EngineSettings.from_args(args).engine_options()


def _main(args: argparse.Namespace) -> int:
    if args.list_voices:
        print("\n".join(list_voices()))
        print("(espeak-ng voices also take a variant: en-us+f2, en-gb-x-rp+m3)")
        return 0
    try:
        cfg = EngineSettings.from_args(args)
        options = cfg.engine_options()
    except OSError as exc:
        print(f"rtvoice local-realtime: cannot read --phrases-file: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # ConfigError: a bad flag or variable; OptionsError: a stage without its URL
        print(f"rtvoice local-realtime: {exc}", file=sys.stderr)
        return 2
    setup_logging("local-realtime", cfg.log_level)

    async def serve() -> int:
        server = LocalRealtimeServer(options, cfg.host, cfg.port)
        try:
            await server.start()
            metrics_port = serve_metrics(cfg.host, cfg.metrics_port)
        except OSError as exc:
            print(f"rtvoice local-realtime: cannot listen on {cfg.host}:{cfg.port}: {exc}", file=sys.stderr)
            return 1
        except (UnsupportedVoiceError, ResponderError) as exc:
            print(f"rtvoice local-realtime: {exc}", file=sys.stderr)
            return 2
        stop = asyncio.Event()
        install_stop_signals(stop)
        announce_ready("local-realtime", port=server.port, url=server.url, metrics_port=metrics_port)
        await stop.wait()
        log.info("stopping")
        await server.stop()
        return 0

    return run(serve)
