"""``rtvoice local-realtime``: the offline speech-to-speech engine (OpenAI Realtime GA protocol)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from rtvoice.core.service import (
    add_server_arguments,
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.localrt.options import EngineOptions, read_phrases_file
from rtvoice.localrt.server import LocalRealtimeServer

log = logging.getLogger("rtvoice.localrt")

API_KEY_ENV = "RTVOICE_LOCALRT_API_KEY"
CHAT_API_KEY_ENV = "RTVOICE_CHAT_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``local-realtime`` to the ``rtvoice`` command."""
    p = subparsers.add_parser(
        "local-realtime",
        help="offline speech-to-speech engine speaking the OpenAI Realtime GA protocol",
        description=(
            "Serve ws://HOST:PORT/v1/realtime?model=... with the OpenAI Realtime GA protocol, built from "
            "offline parts: webrtcvad (turn detection), pocketsphinx (recognition; exact with --phrase / "
            "--phrases-file), an echo or chat-completions responder, espeak-ng (speech). "
            'Prints RTVOICE_READY {"service": "local-realtime", "port": ..., "url": ...}.'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_server_arguments(p)
    p.add_argument(
        "--phrase",
        action="append",
        default=[],
        metavar="TEXT",
        help="an expected utterance (repeatable); recognition then uses a grammar of the phrases",
    )
    p.add_argument("--phrases-file", metavar="FILE", help="expected utterances, one per line (# comments)")
    p.add_argument(
        "--chat-url",
        metavar="URL",
        help="OpenAI-compatible chat-completions endpoint that writes replies (base …/v1 or full "
        "…/chat/completions); default: echo what was understood",
    )
    p.add_argument("--chat-model", default="gpt-4o-mini", help="model name sent to --chat-url")
    p.add_argument("--chat-timeout-s", type=float, default=20.0, help="timeout of one chat request, s")
    p.add_argument(
        "--voice", default="marin", help="default voice (OpenAI name or espeak-ng voice, e.g. en-gb)"
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get(API_KEY_ENV),
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; unset = no auth)",
    )
    p.add_argument("--max-session-s", type=float, default=3600.0, help="maximum session length, s")
    p.set_defaults(func=_main)


def _options(args: argparse.Namespace) -> EngineOptions:
    phrases = list(args.phrase)
    if args.phrases_file:
        phrases += read_phrases_file(args.phrases_file)
    return EngineOptions(
        phrases=tuple(phrases),
        chat_url=args.chat_url,
        chat_model=args.chat_model,
        chat_api_key=os.environ.get(CHAT_API_KEY_ENV),
        chat_timeout_s=args.chat_timeout_s,
        voice=args.voice,
        api_key=args.api_key or None,
        max_session_s=args.max_session_s,
    )


def _main(args: argparse.Namespace) -> int:
    setup_logging("local-realtime", args.log_level)
    try:
        options = _options(args)
    except OSError as exc:
        print(f"rtvoice local-realtime: cannot read --phrases-file: {exc}", file=sys.stderr)
        return 2

    async def serve() -> int:
        server = LocalRealtimeServer(options, args.host, args.port)
        try:
            await server.start()
        except OSError as exc:
            print(f"rtvoice local-realtime: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        stop = asyncio.Event()
        install_stop_signals(stop)
        announce_ready("local-realtime", port=server.port, url=server.url)
        await stop.wait()
        log.info("stopping")
        await server.stop()
        return 0

    return run(serve)
