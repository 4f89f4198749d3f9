"""Finalize a session's spool into its archive folder: audio.wav, transcript.json, spans.json, manifest.json.

Runs in a worker thread (blocking file I/O). The WAV is interleaved in chunks from the two raw channel
files, so memory stays O(1) in the session length. ``manifest.json`` lists every other file's name, size
and sha256; ``finalized.json`` is written last and marks the archive as complete and pending upload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np

from rtvoice.core.end_reason import wire_name
from rtvoice.recorder.session import SessionRecorder
from rtvoice.recorder.spool import (
    AGENT,
    CALLER,
    CHECKPOINT,
    EVENTS,
    FILE_MODE,
    FINALIZED,
    LEGACY_STATE,
    SPANS,
    fsync_dir,
    make_private_dir,
    open_text,
    read_jsonl,
    write_json_atomic,
)
from rtvoice.recorder.tracks import ARCHIVE_RATE_HZ, samples_to_ms
from rtvoice.recorder.turns import build_turns
from rtvoice.v1 import frames_pb2 as pb

AUDIO = "audio.wav"
TRANSCRIPT = "transcript.json"
SPANS_FILE = "spans.json"
MANIFEST = "manifest.json"
STREAM_BROKEN = wire_name(pb.END_REASON_STREAM_BROKEN)
_CHUNK_SAMPLES = 1 << 16
_SECRET_KEY = re.compile(r"(?i)(api[_-]?key|secret|token|password|credential|authorization)")


def iso(unix_ns: int) -> str:
    """Unix epoch ns as ISO 8601 UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    t = dt.datetime.fromtimestamp(unix_ns / 1e9, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def file_entry(path: Path) -> dict[str, Any]:
    """``{"name", "size", "sha256"}`` of one archive file."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest}


def scrub_secrets(value: Any) -> Any:
    """Drop keys that look like secrets (apiKey, token, password, ...) from a JSON value, recursively.

    The bridge already sends settings without secrets; this is a second line of defence.
    """
    if isinstance(value, dict):
        return {k: scrub_secrets(v) for k, v in value.items() if not _SECRET_KEY.search(k)}
    if isinstance(value, list):
        return [scrub_secrets(v) for v in value]
    return value


def _open_private(path: Path) -> Any:
    """``path`` opened for binary writing, created owner-only (0600)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb")


def write_wav(rec: SessionRecorder, path: Path, length: int) -> None:
    """Stereo PCM16 at 16000 Hz: left = caller, right = agent; ``length`` samples per channel."""
    with _open_private(path) as f, wave.open(f, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(ARCHIVE_RATE_HZ)
        for start in range(0, length, _CHUNK_SAMPLES):
            n = min(_CHUNK_SAMPLES, length - start)
            frames = np.empty((n, 2), dtype="<i2")
            frames[:, 0] = rec.caller.read(start, n)
            frames[:, 1] = rec.agent.read(start, n)
            wav.writeframesraw(frames.tobytes())


def _settings(raw: str) -> Any:
    if not raw:
        return {}
    try:
        return scrub_secrets(json.loads(raw))
    except ValueError:
        return {"unparsed": True}


def missing_counts(rec: SessionRecorder) -> dict[str, int]:
    """What the archive lacks, by cause (all 0 for a complete archive).

    ``frames_missing``: seq numbers that never reached this recorder; ``frames_dropped_bridge``: frames
    the link dropped (its queue was full), ``caller_audio_frames_dropped_bridge`` of them caller audio;
    ``frames_not_stored``: frames that arrived while the spool could not be written and were never
    resent; ``spans_dropped``: spans dropped by the link or the span sink.
    """
    c = rec.counts
    return {
        "frames_missing": c.frames_missing,
        "frames_not_stored": max(0, rec.book.max_seq_seen - rec.processed_seq),
        "frames_dropped_bridge": c.frames_dropped_bridge,
        "caller_audio_frames_dropped_bridge": c.caller_audio_frames_dropped_bridge,
        "agent_audio_frames_dropped_bridge": c.agent_audio_frames_dropped_bridge,
        "spans_dropped": c.spans_dropped_bridge + c.spans_dropped_sink,
    }


def finalize(rec: SessionRecorder, *, broken: bool, recorder_id: str = "") -> dict[str, Any]:
    """Write the archive of ``rec`` into its spool's ``archive/`` folder; returns the finalized record.

    ``broken`` means the stream ended without an EndFrame: the end reason is ``stream_broken``. The
    manifest says ``complete: true`` only when the session ended with an EndFrame and nothing is missing
    (:func:`missing_counts` all 0); ``recorder_id`` names this instance in the manifest. Files are
    created 0600, the folder 0700. Blocking; run it in a worker thread. Raises ``OSError`` (e.g. disk
    full): the spool is untouched and finalize may run again.
    """
    spool = rec.spool
    rec.close_files()
    out = spool.archive_dir
    if out.exists():
        shutil.rmtree(out)
    make_private_dir(out)
    sess = rec.start.session
    end_t_us = rec.book.end_t_us if rec.ended and not broken else rec.book.last_t_us
    # The WAV spans the session: agent audio scheduled after the end was never heard (the caller hung up
    # or the call broke while it was still queued for playback), so it is cut. Caller audio is never cut:
    # a burst delivered ahead of the clock still is what the caller said.
    length = max(rec.caller.extent, end_t_us * ARCHIVE_RATE_HZ // 1_000_000)
    unheard_agent_ms = round(max(0, rec.agent.extent - length) * 1000 / ARCHIVE_RATE_HZ, 1)
    write_wav(rec, out / AUDIO, length)
    turns, latencies = build_turns(read_jsonl(spool.path(EVENTS)))
    with open_text(out / TRANSCRIPT) as f:
        json.dump({"session_id": rec.session_id, "turns": turns}, f, indent=1, ensure_ascii=False)
    with open(spool.path(SPANS), "rb") as src, _open_private(out / SPANS_FILE) as dst:
        shutil.copyfileobj(src, dst)
    files = [file_entry(out / name) for name in (AUDIO, TRANSCRIPT, SPANS_FILE)]
    started_ns = sess.started_unix_ns
    ended_ns = started_ns + end_t_us * 1000
    counts = {name: getattr(rec.counts, name) for name in rec.counts.__slots__}
    counts["spans_dropped"] = rec.counts.spans_dropped_bridge + rec.counts.spans_dropped_sink
    counts["turns"] = len(turns)
    counts["agent_audio_unheard_ms"] = unheard_agent_ms
    counts["caller_audio_ms"] = round(samples_to_ms(rec.caller.timeline.received), 1)
    missing = missing_counts(rec)
    manifest = {
        "session_id": rec.session_id,
        "part": spool.part,
        "recorder_id": recorder_id,
        "agent": {"namespace": sess.agent_namespace, "name": sess.agent_name},
        "trace_id": rec.book.trace_id,
        "provider": rec.start.provider,
        "model": rec.start.model,
        "agent_settings": _settings(rec.start.agent_settings_json),
        "overrides": _settings(sess.overrides_json),
        "metadata": dict(sess.metadata),
        "caller_formats": {"input": rec.input_format.name, "output": rec.output_format.name},
        "started_at": iso(started_ns),
        "started_unix_ns": started_ns,
        "ended_at": iso(ended_ns),
        "ended_unix_ns": ended_ns,
        "duration_ms": round(end_t_us / 1000, 1),
        "end_reason": STREAM_BROKEN if broken else rec.book.end_reason,
        "end_detail": rec.book.end_detail,
        "complete": not broken and not any(missing.values()),
        "missing": missing,
        "seq": {"first": rec.book.first_seq, "last": rec.processed_seq},
        "part_start_ms": round(rec.book.first_t_us / 1000, 1),
        "audio": {
            "sample_rate_hz": ARCHIVE_RATE_HZ,
            "channels": ["caller", "agent"],
            "samples": length,
        },
        "counts": counts,
        "latency": latencies,
        "files": files,
    }
    with open_text(out / MANIFEST) as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    for name in (AUDIO, TRANSCRIPT, SPANS_FILE, MANIFEST):
        with open(out / name, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(out)
    record = {
        "session_id": rec.session_id,
        "name": spool.name,
        "part": spool.part,
        "agent": sess.agent_name,
        "started_unix_ns": started_ns,
        "end_reason": manifest["end_reason"],
        "complete": manifest["complete"],
        "files": [*files, file_entry(out / MANIFEST)],
    }
    write_json_atomic(spool.path(FINALIZED), record)
    rec.release()
    for name in (CALLER, AGENT, EVENTS, SPANS, CHECKPOINT, LEGACY_STATE):
        spool.path(name).unlink(missing_ok=True)
    return record
