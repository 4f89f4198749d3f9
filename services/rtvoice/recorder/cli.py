"""``rtvoice recorder`` (the archiving gRPC service) and ``rtvoice sessions`` (read the archive back)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from rtvoice.core.config import ConfigError
from rtvoice.core.internal_auth import credentials_from, warn_if_open
from rtvoice.core.metrics import serve_metrics
from rtvoice.core.retry import Backoff
from rtvoice.core.service import (
    announce_ready,
    install_stop_signals,
    run,
    setup_logging,
)
from rtvoice.recorder.archive_source import ArchiveSource, LocalArchive, S3Archive
from rtvoice.recorder.quarantine import list_quarantine
from rtvoice.recorder.server import UPLOAD_BACKOFF, RecorderConfig, RecorderServer
from rtvoice.recorder.sessions_cmd import sessions_list, sessions_report, sessions_show
from rtvoice.recorder.settings import RecorderSettings, SessionsSettings
from rtvoice.recorder.stores import ArchiveMode, ArchiveStore, LocalStore, S3Store

log = logging.getLogger(__name__)
#: The configuration model of each command (``tests/operator/test_chart_config_schema.py`` reads it).
SETTINGS = {"recorder": RecorderSettings, "sessions": SessionsSettings}


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
    RecorderSettings.add_arguments(rec)
    rec.set_defaults(func=run_recorder)

    ses = subparsers.add_parser(
        "sessions",
        help="list archived sessions, show one, report latency percentiles",
        description="Reads the archives written by `rtvoice recorder` from the local archive folder or, "
        "with --s3-endpoint/--s3-bucket, from the object store.",
    )
    SessionsSettings.add_arguments(ses)
    sub = ses.add_subparsers(dest="sessions_command", required=True, metavar="{list,show,report}")
    sub.add_parser("list", help="sessions, newest first: id, agent, start, duration, turns")
    show = sub.add_parser("show", help="one session: transcript with timings, latencies, files")
    show.add_argument("session_id", metavar="ID", help="session id (a unique prefix is enough)")
    report = sub.add_parser("report", help="p50/p95 first-audio and turn-complete latency across sessions")
    report.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="write a latency histogram (needs matplotlib: pip install 'rtvoice[plot]'; exit 3 without it)",
    )
    ses.set_defaults(func=run_sessions)


def _upload_backoff(max_s: float) -> Backoff:
    """The upload retry policy with its longest wait set to ``max_s`` (> 0)."""
    max_s = max(0.01, max_s)
    return dataclasses.replace(UPLOAD_BACKOFF, initial_s=min(UPLOAD_BACKOFF.initial_s, max_s), max_s=max_s)


def _fail(message: str) -> int:
    sys.stderr.write(f"rtvoice: {message}\n")
    return 2


def source_from_args(args: argparse.Namespace) -> ArchiveSource:
    """The archive ``rtvoice sessions`` reads: S3 when configured, else ``--archive-dir``.

    Raises ``ConfigError`` (``S3ConfigError`` for the object store) naming the flag or variable."""
    cfg = SessionsSettings.from_args(args)
    s3 = cfg.s3_options()
    return S3Archive(s3) if s3 is not None else LocalArchive(cfg.archive_dir)


def run_sessions(args: argparse.Namespace) -> int:
    """Entry point of ``rtvoice sessions``."""
    try:
        source = source_from_args(args)
        spool_dir = SessionsSettings.from_args(args).spool_dir
    except ConfigError as exc:
        return _fail(str(exc))
    out = sys.stdout
    if args.sessions_command == "list":
        return sessions_list(source, out, list_quarantine(spool_dir))
    if args.sessions_command == "show":
        return sessions_show(source, args.session_id, out)
    return sessions_report(source, out, plot=args.plot)


def run_recorder(args: argparse.Namespace) -> int:
    """Entry point of ``rtvoice recorder``: serve until SIGINT/SIGTERM."""
    try:
        cfg = RecorderSettings.from_args(args)
        s3 = cfg.s3_options()
    except ConfigError as exc:
        return _fail(str(exc))
    setup_logging("recorder", cfg.log_level)
    try:
        mode = ArchiveMode(cfg.archive_mode, cfg.archive_group)
    except ValueError as exc:
        return _fail(f"--archive-mode/--archive-group: {exc}")
    store: ArchiveStore = S3Store(s3) if s3 is not None else LocalStore(cfg.archive_dir, mode)
    sink = None
    if cfg.mongo_uri:
        from pymongo.errors import ConfigurationError

        from rtvoice.recorder.span_sink import MongoSpanSink

        try:
            sink = MongoSpanSink(
                cfg.mongo_uri, cfg.mongo_db, queue_max=cfg.span_queue_max, batch_size=cfg.span_batch_size
            )
        except (ConfigurationError, ValueError) as exc:
            return _fail(f"--mongo-uri: {exc}")
    config = RecorderConfig(
        spool_dir=cfg.spool_dir,
        store=store,
        sink=sink,
        recorder_id=cfg.recorder_id,
        resume_grace_s=cfg.resume_grace_s,
        durable=not cfg.unsafe_no_fsync,
        sync_interval_s=cfg.sync_interval_ms / 1000,
        upload_backoff=_upload_backoff(cfg.upload_retry_max_s),
    )
    try:
        config.internal_credentials = credentials_from(cfg.internal_token_file)
    except ValueError as exc:
        return _fail(f"recorder: {exc}")

    async def main() -> int:
        """Serve until a stop signal, then stop gracefully (open streams get 2 s)."""
        stop = asyncio.Event()
        install_stop_signals(stop)
        server = RecorderServer(config, cfg.host, cfg.port)
        try:
            port = await server.start()
            metrics_port = serve_metrics(cfg.host, cfg.metrics_port)
        except OSError as exc:
            return _fail(f"recorder: {exc}")
        warn_if_open("recorder", config.internal_credentials)
        if sink is not None:
            sink.start()
        where = s3.uri(s3.prefix) if s3 is not None else str(cfg.archive_dir.resolve())
        announce_ready(
            "recorder",
            port=port,
            host=cfg.host,
            spool_dir=str(cfg.spool_dir.resolve()),
            archive=where,
            metrics_port=metrics_port,
        )
        await stop.wait()
        log.info("stopping")
        await server.stop(grace_s=2.0)
        if sink is not None:
            await asyncio.to_thread(sink.close)
        return 0

    return run(main)
