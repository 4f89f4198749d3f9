"""``rtvoice call``: talk to an agent from a WAV file (or a typed turn) without a browser."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from rtvoice.caller.client import (
    EXIT_AUTH,
    EXIT_CONNECT,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_SESSION,
    EXIT_USAGE,
    CallError,
    CallOptions,
    CallResult,
    place_call,
)
from rtvoice.caller.wavfile import WavError, read_wav, speech_end_sample, write_wav
from rtvoice.core.audio import AudioFormat, decode, encode
from rtvoice.core.errors import RealtimeAudioFormatError
from rtvoice.ingress.protocol import CALLER_FORMATS

DEFAULT_STATE_FILE = Path(".rtvoice/up.json")

EPILOG = f"""\
exit status:
  {EXIT_OK}  the agent answered (its first response with audio completed)
  {EXIT_NO_ANSWER}  no answer within --timeout-s after the audio (or text) was sent
  {EXIT_USAGE}  bad arguments, an unreadable WAV file, or no URL/token to use
  {EXIT_CONNECT}  the ingress could not be reached or refused the connection (not auth)
  {EXIT_AUTH}  the token was refused (HTTP 401/403: missing, invalid, expired or for another agent)
  {EXIT_SESSION}  the session failed: a fatal error event, or it ended before the agent answered

Without --url/--token they are read from the state file `rtvoice up` writes
(keys caller_url and token). Transcripts are printed as they arrive (final texts), then the first-audio
latency: ms from the end of the speech in the file (its last non-silent sample) to the agent's first audio
(rtvoice.core.latency). With --json the summary line is printed on failures too (exit status 5 and
"ended_reason": why the service ended the session, e.g. "server_shutdown").
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``call`` to the ``rtvoice`` command."""
    p = subparsers.add_parser(
        "call",
        help="call an agent with a WAV file (or --text) and save its spoken reply",
        description=(
            "Stream FILE.wav to an agent at real-time pace in 20 ms frames, followed by silence until the "
            "agent's response is done, print both transcripts and the first-audio latency, and save the "
            "reply. WAV files in other formats (stereo, 8-48 kHz, 8/24/32-bit) are converted."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("wav", nargs="?", metavar="FILE.wav", help="what to say (omit with --text)")
    p.add_argument("--text", help="send this typed turn instead of audio")
    p.add_argument("--save", metavar="REPLY.wav", help="write the agent's reply (as played) to this WAV file")
    p.add_argument("--url", help="caller WebSocket URL, e.g. ws://127.0.0.1:8080/v1/agents/default/assistant")
    p.add_argument("--token", help="caller token (rtvoice token); sent as Authorization: Bearer")
    p.add_argument(
        "--state-file",
        type=Path,
        default=DEFAULT_STATE_FILE,
        help=f"where `rtvoice up` wrote caller_url and token (default: {DEFAULT_STATE_FILE})",
    )
    p.add_argument(
        "--timeout-s", type=float, default=30.0, help="how long to wait for the answer (default: 30)"
    )
    p.add_argument(
        "--input-format", default="pcm16_16k", choices=CALLER_FORMATS, help="audio sent (default: pcm16_16k)"
    )
    p.add_argument(
        "--output-format",
        default="pcm16_24k",
        choices=CALLER_FORMATS,
        help="audio received (default: pcm16_24k)",
    )
    p.add_argument("--json", action="store_true", help="finish with one JSON line summarising the call")
    p.set_defaults(func=_call)


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"rtvoice call: {message}\n")
    return code


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    url, token = args.url, args.token
    if url is None or token is None:
        try:
            state = json.loads(args.state_file.read_text())
        except FileNotFoundError:
            if url is None:
                raise CallError(
                    EXIT_USAGE, f"no --url given and no {args.state_file} (start the stack with `rtvoice up`)"
                ) from None
            state = {}
        except (OSError, ValueError) as err:
            raise CallError(EXIT_USAGE, f"cannot read {args.state_file}: {err}") from None
        url = url or state.get("caller_url")
        token = token or state.get("token")
        if not url:
            raise CallError(EXIT_USAGE, f"{args.state_file} has no caller_url; give --url")
    return url, token


def _options(args: argparse.Namespace) -> CallOptions:
    if (args.wav is None) == (args.text is None):
        raise CallError(EXIT_USAGE, "give a WAV file or --text, not both")
    try:
        in_fmt = AudioFormat.parse(args.input_format)
        out_fmt = AudioFormat.parse(args.output_format)
    except RealtimeAudioFormatError as err:
        raise CallError(EXIT_USAGE, err.message) from None
    url, token = _endpoint(args)
    opts = CallOptions(
        url=url, token=token, input_format=in_fmt, output_format=out_fmt, timeout_s=args.timeout_s
    )
    if args.text is not None:
        opts.text = args.text
        return opts
    try:
        samples = read_wav(args.wav, in_fmt.sample_rate_hz)
    except WavError as err:
        raise CallError(EXIT_USAGE, str(err)) from None
    end = speech_end_sample(samples, in_fmt.sample_rate_hz)
    if end is None:
        raise CallError(EXIT_USAGE, f"{args.wav}: the file is silent; there is nothing to say")
    opts.audio = encode(samples, in_fmt)
    opts.speech_end_ms = end * 1000.0 / in_fmt.sample_rate_hz
    return opts


def _summary(result: CallResult, saved: str | None, out_fmt: AudioFormat) -> dict[str, object]:
    return {
        "answered": result.answered,
        "session_id": result.session_id,
        "trace_id": result.trace_id or None,
        "provider": result.provider,
        "transcripts": [{"role": r, "text": t} for r, t in result.transcripts],
        "first_audio_latency_ms": None
        if result.first_audio_latency_ms is None
        else round(result.first_audio_latency_ms, 1),
        "server_latency_ms": result.server_latency_ms,
        "reply_ms": round(out_fmt.duration_ms(len(result.reply)), 1),
        "saved": saved,
        "errors": result.errors,
        "ended_reason": result.ended_reason or None,
        "close_code": result.close_code,
    }


def _call(args: argparse.Namespace) -> int:
    try:
        opts = _options(args)
        result = asyncio.run(place_call(opts, print))
    except CallError as err:
        if args.json and err.result is not None:  # what happened before the failure, for scripts
            print(json.dumps(_summary(err.result, None, opts.output_format)))
        return _fail(err.exit_code, str(err))
    out_fmt = opts.output_format
    if args.save:
        pcm = encode(decode(bytes(result.reply), out_fmt), AudioFormat("pcm16", out_fmt.sample_rate_hz))
        try:
            write_wav(args.save, pcm, out_fmt.sample_rate_hz)
        except OSError as err:
            return _fail(EXIT_USAGE, f"cannot write {args.save}: {err.strerror}")
        print(
            f"saved reply: {args.save} ({out_fmt.duration_ms(len(result.reply)) / 1000:.2f} s, "
            f"{out_fmt.sample_rate_hz} Hz)"
        )
    if args.json:
        print(json.dumps(_summary(result, args.save, out_fmt)))
    return EXIT_OK
