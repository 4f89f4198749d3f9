"""Finalize a session's spool into its archive folder: audio.wav, transcript.json, spans.json, manifest.json.

Runs in a worker thread (blocking file I/O). The WAV is interleaved in chunks from the two raw channel
files, so memory stays O(1) in the session length. ``manifest.json`` lists every other file's name, size
and sha256; ``finalized.json`` is written last and marks the archive as complete and pending upload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np

from rtvoice.recorder.session import SessionRecorder
from rtvoice.recorder.spool import (
    AGENT,
    CALLER,
    EVENTS,
    FINALIZED,
    SPANS,
    STATE,
    read_jsonl,
    write_json_atomic,
)
from rtvoice.recorder.tracks import ARCHIVE_RATE_HZ
from rtvoice.recorder.turns import build_turns

AUDIO = "audio.wav"
TRANSCRIPT = "transcript.json"
SPANS_FILE = "spans.json"
MANIFEST = "manifest.json"
STREAM_BROKEN = "stream_broken"
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


def write_wav(rec: SessionRecorder, path: Path, length: int) -> None:
    """Stereo PCM16 at 16000 Hz: left = caller, right = agent; ``length`` samples per channel."""
    with wave.open(str(path), "wb") as wav:
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


def finalize(rec: SessionRecorder, *, broken: bool) -> dict[str, Any]:
    """Write the archive of ``rec`` into its spool's ``archive/`` folder; returns the finalized record.

    ``broken`` means the stream ended without an EndFrame: the end reason is ``stream_broken`` and the
    manifest says ``complete: false``. Blocking; run it in a worker thread.
    """
    spool = rec.spool
    rec.close_files()
    out = spool.archive_dir
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sess = rec.start.session
    end_t_us = rec.book.end_t_us if rec.ended and not broken else rec.book.last_t_us
    # The WAV spans the session: agent audio scheduled after the end was never heard (the caller hung up
    # or the call broke while it was still queued for playback), so it is cut. Caller audio is never cut:
    # a burst delivered ahead of the clock still is what the caller said.
    length = max(rec.caller.extent, end_t_us * ARCHIVE_RATE_HZ // 1_000_000)
    unheard_agent_ms = round(max(0, rec.agent.extent - length) * 1000 / ARCHIVE_RATE_HZ, 1)
    write_wav(rec, out / AUDIO, length)
    rec.caller.close()
    rec.agent.close()
    turns, latencies = build_turns(read_jsonl(spool.path(EVENTS)))
    with open(out / TRANSCRIPT, "w", encoding="utf-8") as f:
        json.dump({"session_id": rec.session_id, "turns": turns}, f, indent=1, ensure_ascii=False)
    shutil.copyfile(spool.path(SPANS), out / SPANS_FILE)
    files = [file_entry(out / name) for name in (AUDIO, TRANSCRIPT, SPANS_FILE)]
    started_ns = sess.started_unix_ns
    ended_ns = started_ns + end_t_us * 1000
    counts = {name: getattr(rec.counts, name) for name in rec.counts.__slots__}
    counts["spans_dropped"] = rec.counts.spans_dropped_bridge + rec.counts.spans_dropped_sink
    counts["turns"] = len(turns)
    counts["agent_audio_unheard_ms"] = unheard_agent_ms
    manifest = {
        "session_id": rec.session_id,
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
        "complete": not broken,
        "audio": {
            "sample_rate_hz": ARCHIVE_RATE_HZ,
            "channels": ["caller", "agent"],
            "samples": length,
        },
        "counts": counts,
        "latency": latencies,
        "files": files,
    }
    with open(out / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    record = {
        "session_id": rec.session_id,
        "agent": sess.agent_name,
        "started_unix_ns": started_ns,
        "files": [*files, file_entry(out / MANIFEST)],
    }
    write_json_atomic(spool.path(FINALIZED), record)
    for name in (CALLER, AGENT, EVENTS, SPANS, STATE):
        spool.path(name).unlink(missing_ok=True)
    return record
