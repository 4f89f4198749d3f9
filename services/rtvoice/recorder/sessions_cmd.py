"""``rtvoice sessions list | show ID | report``: read archived sessions and their latencies.

Each function takes an :class:`~rtvoice.recorder.archive_source.ArchiveSource` and a text stream, writes
human-readable text, and returns the exit code (0 ok, 1 nothing found / unreadable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rtvoice.recorder.archive_source import AmbiguousSessionId, ArchiveReadError, ArchiveSource

METRICS = ("first_audio_ms", "turn_complete_ms")


def _agent(m: dict[str, Any]) -> str:
    agent = m.get("agent") or {}
    ns, name = agent.get("namespace", ""), agent.get("name", "")
    return f"{ns}/{name}" if ns else name or "-"


def _seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} ms"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _manifests(source: ArchiveSource, out: TextIO) -> list[dict[str, Any]] | None:
    try:
        manifests = source.manifests()
    except ArchiveReadError as exc:
        out.write(f"error: {exc}\n")
        return None
    if not manifests:
        out.write(f"No archived sessions in {source.description}.\n")
        return None
    return manifests


def sessions_list(source: ArchiveSource, out: TextIO) -> int:
    """One line per session, newest first: id, agent, start (UTC), duration, turns, status."""
    manifests = _manifests(source, out)
    if manifests is None:
        return 1
    manifests.sort(key=lambda m: m.get("started_unix_ns", 0), reverse=True)
    rows = [["SESSION", "AGENT", "STARTED (UTC)", "DURATION", "TURNS", "END"]]
    for m in manifests:
        end = m.get("end_reason", "")
        rows.append(
            [
                m.get("session_id", "?"),
                _agent(m),
                m.get("started_at", "-"),
                _seconds(m.get("duration_ms")),
                str(m.get("counts", {}).get("turns", 0)),
                end if m.get("complete", True) else f"{end} (incomplete)",
            ]
        )
    out.write("\n".join(_table(rows)) + f"\n{len(manifests)} session(s) in {source.description}\n")
    return 0


def sessions_show(source: ArchiveSource, session_id: str, out: TextIO) -> int:
    """The transcript with timings, the per-response latencies and the files of one session."""
    try:
        found = source.load(session_id)
    except (ArchiveReadError, AmbiguousSessionId) as exc:
        out.write(f"error: {exc}\n")
        return 1
    if found is None:
        out.write(f"No session {session_id!r} in {source.description} (see `rtvoice sessions list`).\n")
        return 1
    m, transcript = found
    counts = m.get("counts", {})
    formats = m.get("caller_formats", {})
    status = "complete" if m.get("complete", True) else "INCOMPLETE"
    out.write(
        f"Session {m.get('session_id')}  agent {_agent(m)}  provider {m.get('provider') or '-'}"
        f"  model {m.get('model') or '-'}\n"
        f"Started {m.get('started_at')}  duration {_seconds(m.get('duration_ms'))}"
        f"  end {m.get('end_reason')} ({status})\n"
        f"Trace {m.get('trace_id') or '-'}  caller audio in {formats.get('input', '-')}"
        f" / out {formats.get('output', '-')}\n"
    )
    turns = transcript.get("turns", [])
    out.write(f"\nTranscript ({len(turns)} turns):\n")
    for t in turns:
        span = f"{_sec3(t.get('start_ms'))} - {_sec3(t.get('end_ms'))}"
        flag = " [interrupted]" if t.get("interrupted") else ""
        out.write(f"  [{span}] {t.get('role', '?'):<9} {t.get('text') or '(no text)'}{flag}\n")
    latency = m.get("latency", [])
    out.write("\nLatency:\n")
    if latency:
        rows = [["RESPONSE", "FIRST AUDIO", "TURN COMPLETE", "STATUS"]]
        rows += [
            [
                r.get("response_id") or "-",
                _ms(r.get("first_audio_ms")),
                _ms(r.get("turn_complete_ms")),
                r.get("status") or "-",
            ]
            for r in latency
        ]
        out.write("".join(f"  {line}\n" for line in _table(rows)))
    else:
        out.write("  (no responses)\n")
    out.write("\nFiles:\n")
    for f in m.get("files", []):
        out.write(f"  {f['name']:<16} {f['size']:>12,} bytes  sha256 {f['sha256']}\n")
    out.write(
        f"\nCounts: frames {counts.get('frames', 0)}, spans {counts.get('spans', 0)} "
        f"(dropped {counts.get('spans_dropped', 0)}), errors {counts.get('errors', 0)}, "
        f"barge-ins {counts.get('clears', 0)}, resumes {counts.get('resumes', 0)}\n"
    )
    return 0


def _sec3(ms: float | None) -> str:
    return "   -   " if ms is None else f"{ms / 1000:7.2f}s"


def latency_samples(manifests: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Every response's ``first_audio_ms`` and ``turn_complete_ms`` across sessions (None values skipped)."""
    out: dict[str, list[float]] = {k: [] for k in METRICS}
    for m in manifests:
        for r in m.get("latency", []):
            for k in METRICS:
                if r.get(k) is not None:
                    out[k].append(float(r[k]))
    return out


def sessions_report(source: ArchiveSource, out: TextIO, plot: Path | None = None) -> int:
    """p50/p95 (and count, mean, max) of first-audio and turn-complete latency; optional PNG histogram."""
    manifests = _manifests(source, out)
    if manifests is None:
        return 1
    samples = latency_samples(manifests)
    out.write(f"{len(manifests)} session(s) in {source.description}\n")
    rows = [["METRIC", "N", "P50", "P95", "MEAN", "MAX"]]
    for k in METRICS:
        v = np.asarray(samples[k])
        if v.size:
            p50, p95 = np.percentile(v, [50, 95])
            rows.append([k, str(v.size), _ms(p50), _ms(p95), _ms(float(v.mean())), _ms(float(v.max()))])
        else:
            rows.append([k, "0", "-", "-", "-", "-"])
    out.write("\n".join(_table(rows)) + "\n")
    if plot is not None:
        if not any(samples.values()):
            out.write("no latencies to plot\n")
            return 1
        write_histogram(samples, plot)
        out.write(f"histogram written to {plot}\n")
    return 0


def write_histogram(samples: dict[str, list[float]], path: Path) -> None:
    """A PNG with one latency histogram per metric (matplotlib, Agg backend, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.5 * len(METRICS)), tight_layout=True)
    FigureCanvasAgg(fig)
    for i, k in enumerate(METRICS, start=1):
        ax = fig.add_subplot(len(METRICS), 1, i)
        values = samples[k]
        if values:
            ax.hist(values, bins=min(30, max(5, len(values))), color="tab:blue" if i == 1 else "tab:orange")
            for q, style in ((50, "--"), (95, ":")):
                x = float(np.percentile(values, q))
                ax.axvline(x, color="black", linestyle=style, label=f"p{q} {x:.0f} ms")
            ax.legend()
        ax.set_title(f"{k} ({len(values)} responses)")
        ax.set_xlabel("ms")
        ax.set_ylabel("responses")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png", dpi=100)
