"""``rtvoice sessions list | show ID | report``: read archived sessions and their latencies.

Each function takes an :class:`~rtvoice.recorder.archive_source.ArchiveSource` and a text stream, writes
human-readable text, and returns the exit code (0 ok, 1 nothing found / unreadable,
:data:`EXIT_PLOT_UNAVAILABLE` when ``report --plot`` cannot draw because matplotlib is not installed).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rtvoice.recorder.archive_source import AmbiguousSessionId, ArchiveReadError, ArchiveSource, Part
from rtvoice.recorder.quarantine import QuarantinedEntry

METRICS = ("first_audio_ms", "turn_complete_ms")

#: ``report --plot`` without matplotlib (the report itself was printed).
EXIT_PLOT_UNAVAILABLE = 3


class PlotUnavailableError(RuntimeError):
    """``report --plot`` needs matplotlib, an optional dependency (the ``plot`` extra) that service
    images do not install; the message says what to install."""


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


def _manifests(source: ArchiveSource, out: TextIO, *, quiet: bool = False) -> list[dict[str, Any]] | None:
    try:
        manifests = source.manifests()
    except ArchiveReadError as exc:
        out.write(f"error: {exc}\n")
        return None
    if not manifests:
        if not quiet:
            out.write(f"No archived sessions in {source.description}.\n")
        return None
    return manifests


def parts_complete(parts: list[dict[str, Any]]) -> bool:
    """True when the parts (manifests, ordered) hold the whole session: the last one ended with an
    EndFrame and nothing is missing, every part lost no frame, and each part starts at or before the
    seq after the previous part's last one (an earlier part ends ``stream_broken`` by design)."""
    if not parts or not parts[-1].get("complete", True):
        return False
    for prev, nxt in itertools.pairwise(parts):
        if any((prev.get("missing") or {}).values()):
            return False
        if nxt.get("seq", {}).get("first", 0) > prev.get("seq", {}).get("last", 0) + 1:
            return False
    return True


def _grouped(manifests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    by_session: dict[str, list[dict[str, Any]]] = {}
    for m in manifests:
        by_session.setdefault(m.get("session_id", "?"), []).append(m)
    groups = [sorted(g, key=lambda m: m.get("part", 1)) for g in by_session.values()]
    groups.sort(key=lambda g: g[0].get("started_unix_ns", 0), reverse=True)
    return groups


def _end_text(parts: list[dict[str, Any]]) -> str:
    end = parts[-1].get("end_reason", "")
    text = end if parts_complete(parts) else f"{end} (incomplete)"
    return text if len(parts) == 1 else f"{text} [{len(parts)} parts]"


def sessions_list(
    source: ArchiveSource, out: TextIO, quarantined: list[QuarantinedEntry] | None = None
) -> int:
    """One line per session, newest first: id, agent, start (UTC), duration, turns, status; then the
    spool's quarantined entries (``quarantined``), if any."""
    manifests = _manifests(source, out, quiet=bool(quarantined))
    if manifests is None and not quarantined:
        return 1
    if manifests:
        rows = [["SESSION", "AGENT", "STARTED (UTC)", "DURATION", "TURNS", "END"]]
        groups = _grouped(manifests)
        for parts in groups:
            first, last = parts[0], parts[-1]
            duration = (last.get("ended_unix_ns", 0) - first.get("started_unix_ns", 0)) / 1e6
            turns = sum(m.get("counts", {}).get("turns", 0) for m in parts)
            rows.append([first.get("session_id", "?"), _agent(first), first.get("started_at", "-"),
                         _seconds(duration), str(turns), _end_text(parts)])  # fmt: skip
        out.write("\n".join(_table(rows)) + f"\n{len(groups)} session(s) in {source.description}\n")
    for q in quarantined or []:
        out.write(f"QUARANTINED  {q.name}  {q.reason}  ({q.path})\n")
    return 0


def sessions_show(source: ArchiveSource, session_id: str, out: TextIO) -> int:
    """The transcript with timings, the per-response latencies and the files of one session (all parts)."""
    try:
        found = source.load(session_id)
    except (ArchiveReadError, AmbiguousSessionId) as exc:
        out.write(f"error: {exc}\n")
        return 1
    if not found:
        out.write(f"No session {session_id!r} in {source.description} (see `rtvoice sessions list`).\n")
        return 1
    manifests = [m for m, _ in found]
    m = manifests[0]
    formats = m.get("caller_formats", {})
    status = "complete" if parts_complete(manifests) else "INCOMPLETE"
    last = manifests[-1]
    duration = (last.get("ended_unix_ns", 0) - m.get("started_unix_ns", 0)) / 1e6
    out.write(
        f"Session {m.get('session_id')}  agent {_agent(m)}  provider {m.get('provider') or '-'}"
        f"  model {m.get('model') or '-'}\n"
        f"Started {m.get('started_at')}  duration {_seconds(duration)}"
        f"  end {last.get('end_reason')} ({status})\n"
        f"Trace {m.get('trace_id') or '-'}  caller audio in {formats.get('input', '-')}"
        f" / out {formats.get('output', '-')}\n"
    )
    if len(found) > 1:
        out.write(f"\nParts ({len(found)}, one session clock):\n")
        for pm in manifests:
            seq = pm.get("seq", {})
            out.write(f"  part {pm.get('part', 1)}  recorder {pm.get('recorder_id') or '-'}  "
                      f"seq {seq.get('first', '?')}-{seq.get('last', '?')}  "
                      f"{_sec3(pm.get('part_start_ms'))} -{_sec3(pm.get('duration_ms'))}  "
                      f"end {pm.get('end_reason')}\n")  # fmt: skip
    _show_parts(found, out)
    return 0


def _show_parts(found: list[Part], out: TextIO) -> None:
    turns = sorted((t for _, tr in found for t in tr.get("turns", [])), key=lambda t: t.get("start_ms") or 0)
    out.write(f"\nTranscript ({len(turns)} turns):\n")
    for t in turns:
        span = f"{_sec3(t.get('start_ms'))} - {_sec3(t.get('end_ms'))}"
        flag = " [interrupted]" if t.get("interrupted") else ""
        out.write(f"  [{span}] {t.get('role', '?'):<9} {t.get('text') or '(no text)'}{flag}\n")
    latency = [r for m, _ in found for r in m.get("latency", [])]
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
    several = len(found) > 1
    width = 24 if several else 16
    for m, _ in found:
        prefix = f"part {m.get('part', 1)}/" if several else ""
        for f in m.get("files", []):
            out.write(f"  {prefix + f['name']:<{width}} {f['size']:>12,} bytes  sha256 {f['sha256']}\n")
    total: dict[str, int] = {}
    for m, _ in found:
        for k, v in m.get("counts", {}).items():
            if isinstance(v, int):
                total[k] = total.get(k, 0) + v
    missing: dict[str, int] = {}
    for m, _ in found:
        for k, v in (m.get("missing") or {}).items():
            missing[k] = missing.get(k, 0) + v
    out.write(
        f"\nCounts: frames {total.get('frames', 0)}, spans {total.get('spans', 0)} "
        f"(dropped {total.get('spans_dropped', 0)}), errors {total.get('errors', 0)}, "
        f"barge-ins {total.get('clears', 0)}, resumes {total.get('resumes', 0)}\n"
    )
    lost = {k: v for k, v in missing.items() if v}
    if lost:
        out.write("Missing: " + ", ".join(f"{k} {v}" for k, v in lost.items()) + "\n")


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
        try:
            write_histogram(samples, plot)
        except PlotUnavailableError as err:
            out.write(f"no histogram: {err}\n")
            return EXIT_PLOT_UNAVAILABLE
        out.write(f"histogram written to {plot}\n")
    return 0


def write_histogram(samples: dict[str, list[float]], path: Path) -> None:
    """A PNG with one latency histogram per metric (matplotlib, Agg backend, no display needed).
    Raises :class:`PlotUnavailableError` when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailableError(
            "--plot needs matplotlib, which is not installed here; install it with "
            "pip install 'rtvoice[plot]' (or pip install 'matplotlib>=3.8'), or run the report "
            "where it is installed"
        ) from exc

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
