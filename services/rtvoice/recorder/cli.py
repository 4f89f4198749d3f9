"""``rtvoice recorder`` (the archiving gRPC service) and ``rtvoice sessions`` (read the archive back)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from rtvoice.core.service import (
    add_server_arguments,
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.recorder.archive_source import ArchiveSource, LocalArchive, S3Archive
from rtvoice.recorder.s3 import S3ConfigError, add_s3_arguments, s3_options_from_args
from rtvoice.recorder.server import RecorderConfig, RecorderServer
from rtvoice.recorder.sessions_cmd import sessions_list, sessions_report, sessions_show
from rtvoice.recorder.stores import ArchiveStore, LocalStore, S3Store

log = logging.getLogger(__name__)
DEFAULT_ARCHIVE = Path(".rtvoice/archive")
DEFAULT_SPOOL = Path(".rtvoice/spool")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``recorder`` and ``sessions`` to the ``rtvoice`` command."""
    rec = subparsers.add_parser(
        "recorder",
        help="archive sessions (gRPC Recorder.Record): audio.wav, transcript, manifest, spans",
        description="Receives a copy of every frame of each session from the realtime bridges, spools it to "
        "disk as it arrives and, when the session ends (or its stream breaks), writes the archive "
        "<session id>/{audio.wav,transcript.json,manifest.json,spans.json} to the archive folder or an "
        "S3-compatible store. Spans also go to MongoDB workflow_spans when --mongo-uri is set.",
    )
    add_server_arguments(rec)
    rec.add_argument(
        "--archive-dir",
        type=Path,
        default=DEFAULT_ARCHIVE,
        help=f"local archive folder (default {DEFAULT_ARCHIVE})",
    )
    rec.add_argument(
        "--spool-dir",
        type=Path,
        default=DEFAULT_SPOOL,
        help=f"where sessions are written while they run and until stored (default {DEFAULT_SPOOL})",
    )
    rec.add_argument(
        "--resume-grace-s",
        type=float,
        default=30.0,
        help="how long a broken stream may take to resume before its archive is finalized (default 30)",
    )
    rec.add_argument(
        "--upload-retry-max-s",
        type=float,
        default=60.0,
        help="longest wait between upload retries (default 60)",
    )
    add_s3_arguments(rec)
    mg = rec.add_argument_group("MongoDB span sink (off unless --mongo-uri or RTVOICE_MONGO_URI)")
    mg.add_argument("--mongo-uri", default=os.environ.get("RTVOICE_MONGO_URI"), help="mongodb:// URI")
    mg.add_argument(
        "--mongo-db", default="rtvoice", help="database (default rtvoice); collection workflow_spans"
    )
    mg.add_argument(
        "--span-queue-max",
        type=int,
        default=10_000,
        help="spans waiting for MongoDB before drops (default 10000)",
    )
    mg.add_argument("--span-batch-size", type=int, default=100, help="spans per insert_many (default 100)")
    rec.set_defaults(func=run_recorder)

    ses = subparsers.add_parser(
        "sessions",
        help="list archived sessions, show one, report latency percentiles",
        description="Reads the archives written by `rtvoice recorder` from the local archive folder or, "
        "with --s3-endpoint/--s3-bucket, from the object store.",
    )
    ses.add_argument(
        "--archive-dir",
        type=Path,
        default=DEFAULT_ARCHIVE,
        help=f"local archive folder (default {DEFAULT_ARCHIVE})",
    )
    add_s3_arguments(ses)
    sub = ses.add_subparsers(dest="sessions_command", required=True, metavar="{list,show,report}")
    sub.add_parser("list", help="sessions, newest first: id, agent, start, duration, turns")
    show = sub.add_parser("show", help="one session: transcript with timings, latencies, files")
    show.add_argument("session_id", metavar="ID", help="session id (a unique prefix is enough)")
    report = sub.add_parser("report", help="p50/p95 first-audio and turn-complete latency across sessions")
    report.add_argument(
        "--plot", type=Path, default=None, metavar="FILE.png", help="write a latency histogram"
    )
    ses.set_defaults(func=run_sessions)


def _fail(message: str) -> int:
    sys.stderr.write(f"rtvoice: {message}\n")
    return 2


def source_from_args(args: argparse.Namespace) -> ArchiveSource:
    """The archive ``rtvoice sessions`` reads: S3 when configured, else ``--archive-dir``."""
    s3 = s3_options_from_args(args)
    return S3Archive(s3) if s3 is not None else LocalArchive(args.archive_dir)


def run_sessions(args: argparse.Namespace) -> int:
    """Entry point of ``rtvoice sessions``."""
    try:
        source = source_from_args(args)
    except S3ConfigError as exc:
        return _fail(str(exc))
    out = sys.stdout
    if args.sessions_command == "list":
        return sessions_list(source, out)
    if args.sessions_command == "show":
        return sessions_show(source, args.session_id, out)
    return sessions_report(source, out, plot=args.plot)


def run_recorder(args: argparse.Namespace) -> int:
    """Entry point of ``rtvoice recorder``: serve until SIGINT/SIGTERM."""
    setup_logging("recorder", args.log_level)
    try:
        s3 = s3_options_from_args(args)
    except S3ConfigError as exc:
        return _fail(str(exc))
    store: ArchiveStore = S3Store(s3) if s3 is not None else LocalStore(args.archive_dir)
    sink = None
    if args.mongo_uri:
        from pymongo.errors import ConfigurationError

        from rtvoice.recorder.span_sink import MongoSpanSink

        try:
            sink = MongoSpanSink(
                args.mongo_uri, args.mongo_db, queue_max=args.span_queue_max, batch_size=args.span_batch_size
            )
        except (ConfigurationError, ValueError) as exc:
            return _fail(f"--mongo-uri: {exc}")
    config = RecorderConfig(
        spool_dir=args.spool_dir,
        store=store,
        sink=sink,
        resume_grace_s=args.resume_grace_s,
        retry_max_s=args.upload_retry_max_s,
    )

    async def main() -> int:
        """Serve until a stop signal, then stop gracefully (open streams get 2 s)."""
        stop = asyncio.Event()
        install_stop_signals(stop)
        server = RecorderServer(config, args.host, args.port)
        try:
            port = await server.start()
        except OSError as exc:
            return _fail(f"recorder: {exc}")
        if sink is not None:
            sink.start()
        where = s3.uri(s3.prefix) if s3 is not None else str(args.archive_dir.resolve())
        announce_ready(
            "recorder", port=port, host=args.host, spool_dir=str(args.spool_dir.resolve()), archive=where
        )
        await stop.wait()
        log.info("stopping")
        await server.stop(grace_s=2.0)
        if sink is not None:
            await asyncio.to_thread(sink.close)
        return 0

    return run(main)
