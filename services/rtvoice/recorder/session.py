"""One session being recorded: applies ``RecordFrame`` messages to the session's spool as they arrive.

Audio goes to the two tracks (tracks.py), everything else to ``events.jsonl`` and ``spans.jsonl``. A
checkpoint is two steps: :meth:`SessionRecorder.snapshot` (on the event loop: the state covering every
frame applied so far, as one checkpoint record) and :meth:`SessionRecorder.sync` (in a worker thread:
``fdatasync`` of the spool files, then the record appended to ``checkpoint.log`` and fdatasync'ed). Only
after ``sync`` returns may the server ack the snapshot's seq as ``durable_seq``. Memory is O(1) in the
session length.

Sequence numbers are contiguous (the link numbers frames as it sends them), so a jump in ``seq`` means
frames the recorder never got: they are counted in ``frames_missing`` and the archive is incomplete.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from rtvoice.core.audio import AudioFormat, decode, validate_frame
from rtvoice.core.end_reason import wire_name
from rtvoice.core.errors import RealtimeAudioFormatError
from rtvoice.core.spans import Span, new_trace_id
from rtvoice.core.trace_context import trace_id_of
from rtvoice.recorder.checkpoint import CheckpointLog, encode_state, load_checkpoint
from rtvoice.recorder.events import EventLogs
from rtvoice.recorder.spool import (
    AGENT,
    CALLER,
    CHECKPOINT,
    EVENTS,
    LEGACY_STATE,
    SPANS,
    SessionSpool,
    SpoolDamaged,
)
from rtvoice.recorder.tracks import (
    SAMPLE_BYTES,
    CallerTrack,
    Track,
    agent_track_from,
    caller_track_from,
    samples_to_ms,
    track_state_dict,
)
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb

log = logging.getLogger(__name__)

# Agent chunks from providers can be long; the recorder only refuses absurd ones.
MAX_FRAME_MS = 10_000.0
_ROLES = {pb.ROLE_USER: "user", pb.ROLE_ASSISTANT: "assistant"}


class SpanSink(Protocol):
    """Where span documents go besides ``spans.json`` (e.g. MongoDB); ``offer`` never blocks."""

    def offer(self, doc: dict[str, Any]) -> bool:
        """Queue one document; False when the queue is full and the document was dropped."""
        ...


@dataclass(slots=True)
class Counts:
    """Counters that end up in ``manifest.json`` under ``counts``."""

    frames: int = 0
    client_frames: int = 0
    server_frames: int = 0
    caller_audio_frames: int = 0
    agent_audio_frames: int = 0
    spans: int = 0
    spans_dropped_bridge: int = 0
    spans_dropped_sink: int = 0
    frames_dropped_bridge: int = 0
    # From the link's LinkStats (cumulative, the latest wins).
    frames_sent_bridge: int = 0
    caller_audio_frames_dropped_bridge: int = 0
    agent_audio_frames_dropped_bridge: int = 0
    # From EndFrame: agent audio the sender (ingress) dropped for a slow caller.
    agent_audio_frames_dropped_sender: int = 0
    # Frames whose seq never arrived here (a jump in seq).
    frames_missing: int = 0
    # Spool writes that failed (disk full, I/O error) and were rolled back to the last checkpoint.
    write_failures: int = 0
    # Silence the caller channel got because caller audio arrived later than continuous (ms, summed):
    # real pauses in the caller's stream, or audio lost before the bridge.
    caller_gap_ms: int = 0
    errors: int = 0
    bad_frames: int = 0
    duplicates: int = 0
    clears: int = 0
    resumes: int = 0

    def take_link_stats(self, st: rpb.LinkStats) -> None:
        """The link's cumulative counters: the highest value seen wins (a resume resends them)."""
        c = self
        c.frames_sent_bridge = max(c.frames_sent_bridge, st.frames_sent)
        c.frames_dropped_bridge = max(c.frames_dropped_bridge, st.frames_dropped)
        c.spans_dropped_bridge = max(c.spans_dropped_bridge, st.spans_dropped)
        c.caller_audio_frames_dropped_bridge = max(
            c.caller_audio_frames_dropped_bridge, st.caller_audio_frames_dropped
        )
        c.agent_audio_frames_dropped_bridge = max(
            c.agent_audio_frames_dropped_bridge, st.agent_audio_frames_dropped
        )


@dataclass(slots=True)
class Bookkeeping:
    """Per-session facts that outlive a single frame (checkpointed with the tracks)."""

    trace_id: str = ""
    last_t_us: int = 0
    end_reason: str = ""
    end_detail: str = ""
    # First seq after the start frame seen by this part (0: none yet).
    first_seq: int = 0
    first_t_us: int = 0
    # Highest seq received, stored or not (frames refused while the spool could not be written).
    max_seq_seen: int = 0
    end_t_us: int = -1
    response_id: str = ""
    response_audio_seen: bool = False
    agent_item: str = ""
    # Spans the recorder made before the session's trace id was known (bounded).
    pending_spans: list[dict[str, Any]] = field(default_factory=list)


def message_dict(msg: Message) -> dict[str, Any]:
    """A protobuf message as a JSON-ready dict with snake_case field names."""
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


class SessionRecorder:
    """Writes one session's frames to its spool. Not thread-safe: one stream owns it at a time.

    ``processed_seq`` is the highest seq applied; ``durable_seq`` the highest one covered by the last
    synced checkpoint (what the recorder may ack). Frames with ``seq <= processed_seq`` are duplicates.
    ``state`` must come from :func:`~rtvoice.recorder.checkpoint.load_checkpoint` (validated); an unknown
    counter raises :class:`SpoolDamaged` before any spool file is opened. ``durable=False`` skips the
    fdatasync calls (benchmarks only: acks then mean "written to the OS").
    """

    def __init__(
        self,
        spool: SessionSpool,
        start: rpb.RecordStart,
        state: dict[str, Any] | None = None,
        sink: SpanSink | None = None,
        *,
        durable: bool = True,
    ) -> None:
        st = state or {}
        try:
            self.counts = Counts(**st.get("counts", {}))
            self.book = Bookkeeping(**st.get("book", {}))
        except TypeError as exc:
            raise SpoolDamaged(f"checkpoint: {exc}") from exc
        self.spool = spool
        self.start = start
        self.sink = sink
        self.durable = durable
        self.session_id = spool.session_id
        self.caller: CallerTrack = caller_track_from(spool.path(CALLER), st.get("caller"))
        self.agent: Track = agent_track_from(spool.path(AGENT), st.get("agent"))
        self.logs = EventLogs(
            spool, start.session.started_unix_ns, self.counts, self.book, sink,
            st.get("events_size", 0), st.get("spans_size", 0),
        )  # fmt: skip
        self.checkpoints = CheckpointLog(spool.path(CHECKPOINT), durable=durable)
        self.durable_seq: int = st.get("durable_seq", 0)
        self.processed_seq = self.durable_seq
        self.closed = False
        self._files_lock = threading.Lock()  # sync (worker thread) vs close (event loop)
        if not self.book.trace_id:
            self.book.trace_id = trace_id_of(start.session.traceparent) or start.session.metadata.get(
                "trace_id", ""
            )
        sess = start.session
        self.input_format = _format_or(sess.input_format, "pcm16_16k")
        self.output_format = _format_or(sess.output_format, "pcm16_16k")

    @classmethod
    def create(
        cls, spool: SessionSpool, first: rpb.RecordFrame, sink: SpanSink | None, *, durable: bool = True
    ) -> SessionRecorder:
        """A new session from its first frame (``first.start``): start.pb and a first synced checkpoint.

        Blocking; raises ``OSError`` when the spool cannot be written.
        """
        spool.create(first.start)
        rec = cls(spool, first.start, None, sink, durable=durable)
        rec.counts.spans_dropped_bridge = first.start.spans_dropped
        rec.processed_seq = first.seq
        rec.mark_durable(rec.sync(rec.snapshot()))
        return rec

    @classmethod
    def resume(cls, spool: SessionSpool, sink: SpanSink | None, *, durable: bool = True) -> SessionRecorder:
        """Continue a spooled session from its last checkpoint (after a restart or a failed write).

        Blocking. Raises :class:`SpoolDamaged` (before touching any file) when start.pb or the checkpoint
        is unreadable or incomplete, or a spool file is shorter than the checkpoint says.
        """
        start, state = check_spool(spool)
        return cls(spool, start, state, sink, durable=durable)

    # ----------------------------------------------------------------------------------------- state

    def note_resumed(self, start: rpb.RecordStart) -> None:
        """A re-opened stream: count it and take the bridge's latest drop counter."""
        self.counts.resumes += 1
        self.counts.spans_dropped_bridge = max(self.counts.spans_dropped_bridge, start.spans_dropped)

    def snapshot(self) -> tuple[int, bytes]:
        """(seq, checkpoint record) covering every frame applied so far; cheap, call on the event loop."""
        state = {
            "durable_seq": self.processed_seq,
            "caller": track_state_dict(self.caller),
            "agent": track_state_dict(self.agent),
            "events_size": self.logs.events.size,
            "spans_size": self.logs.spans.size,
            "counts": _asdict(self.counts),
            "book": _asdict(self.book),
        }
        return self.processed_seq, encode_state(state)

    def sync(self, snap: tuple[int, bytes]) -> int:
        """Make ``snap`` durable: fdatasync the spool files, then append and fdatasync its record.

        Blocking (run it in a worker thread); returns the snapshot's seq. Raises ``OSError`` (disk full,
        I/O error); the previous checkpoint then still stands.
        """
        seq, record = snap
        with self._files_lock:
            if self.durable and not self.closed:
                for track in (self.caller, self.agent):
                    track.sync()
                for log_ in (self.logs.events, self.logs.spans):
                    log_.sync()
            if self.checkpoints.fd >= 0:
                self.checkpoints.append(record)
        return seq

    def mark_durable(self, seq: int) -> int:
        """Record that everything up to ``seq`` is synced (after :meth:`sync`); returns ``durable_seq``."""
        self.durable_seq = max(self.durable_seq, seq)
        return self.durable_seq

    @property
    def ended(self) -> bool:
        """True once the EndFrame was applied."""
        return self.book.end_t_us >= 0

    def release(self) -> None:
        """Close every spool file without flushing anything (this process stops; the spool stays)."""
        with self._files_lock:
            self.closed = True
            for track in (self.caller, self.agent):
                track.close()
            self.logs.close()
            self.checkpoints.close()

    def close_files(self) -> None:
        """Flush the resamplers' tails and close the logs (before finalize; the tracks stay readable).

        Idempotent, so a finalize that failed (disk full) can run again.
        """
        if self.closed:
            return
        self.logs.flush_pending_spans(new_trace_id())
        for track in (self.caller, self.agent):
            track.finish()
        with self._files_lock:
            self.closed = True
            self.logs.close()
            self.checkpoints.close()

    # ----------------------------------------------------------------------------------------- frames

    def apply(self, frame: rpb.RecordFrame) -> bool:
        """Apply one frame; returns False for a duplicate (``seq <= processed_seq``), which is ignored.

        Bad audio is counted (``bad_frames``) and recorded as an error span, never raised.
        """
        if self.closed:
            raise RuntimeError(f"session {self.session_id} is closed")
        self.book.max_seq_seen = max(self.book.max_seq_seen, frame.seq)
        if frame.seq <= self.processed_seq:
            self.counts.duplicates += 1
            return False
        if not self.book.first_seq:
            self.book.first_seq = frame.seq
            self.book.first_t_us = frame.t_us
            # A later part continues where the earlier part's durable frames end: not a gap.
            if self.spool.part > 1:
                self.processed_seq = frame.seq - 1
        if frame.seq > self.processed_seq + 1:
            self.counts.frames_missing += frame.seq - self.processed_seq - 1
        self.processed_seq = frame.seq
        self.counts.frames += 1
        t_us = frame.t_us
        self.book.last_t_us = max(self.book.last_t_us, t_us)
        kind = frame.WhichOneof("payload")
        if kind == "client":
            self.counts.client_frames += 1
            self._client(t_us, frame.client)
        elif kind == "server":
            self.counts.server_frames += 1
            self._server(t_us, frame.server)
        elif kind == "span":
            self.logs.span(Span.from_proto(frame.span))
        elif kind == "link_stats":
            self.counts.take_link_stats(frame.link_stats)
        elif kind == "end":
            end = frame.end
            self.book.end_reason = wire_name(end.reason)
            self.book.end_detail = end.detail
            self.book.end_t_us = t_us
            self.counts.agent_audio_frames_dropped_sender = end.agent_audio_frames_dropped
            self.logs.event(t_us, "end", reason=self.book.end_reason, detail=end.detail)
        return True

    def _client(self, t_us: int, frame: pb.ClientFrame) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "audio":
            samples, rate = self._samples(t_us, frame.audio, self.input_format, "caller")
            if samples is not None:
                self.counts.caller_audio_frames += max(1, frame.audio.frames)  # merged by the ingress
                before, started = self.caller.cursor, bool(self.caller.timeline.segments)
                at = self.caller.place_caller(t_us, samples, rate)
                if started and at > before:  # the caller stream paused, or audio was lost upstream
                    self.counts.caller_gap_ms += round(samples_to_ms(at - before))
        elif kind == "text":
            self.logs.event(t_us, "text_input", text=frame.text.text)
        elif kind is not None:
            self.logs.event(t_us, "client", frame=message_dict(frame))

    def _server(self, t_us: int, frame: pb.ServerFrame) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "audio":
            self._agent_audio(t_us, frame.audio)
        elif kind == "transcript":
            tr = frame.transcript
            role = _ROLES.get(tr.role, "unknown")
            self.logs.event(t_us, "transcript", role=role, item_id=tr.item_id, text=tr.text, final=tr.final)
        elif kind == "speech_started":
            ss = frame.speech_started
            at = self.caller.session_ms_of_audio_ms(ss.audio_start_ms)
            self.logs.event(
                t_us, "speech_started", item_id=ss.item_id, audio_start_ms=ss.audio_start_ms, at_ms=at
            )
        elif kind == "speech_stopped":
            sp = frame.speech_stopped
            at = self.caller.session_ms_of_audio_ms(sp.audio_end_ms)
            self.logs.event(
                t_us, "speech_stopped", item_id=sp.item_id, audio_end_ms=sp.audio_end_ms, at_ms=at
            )
        elif kind == "response_started":
            self.book.response_id = frame.response_started.response_id
            self.book.response_audio_seen = False
            self.logs.event(t_us, "response_started", response_id=self.book.response_id)
        elif kind == "response_done":
            rd = frame.response_done
            self.logs.event(
                t_us,
                "response_done",
                response_id=rd.response_id,
                status=rd.status,
                status_reason=rd.status_reason,
                playback_end_ms=samples_to_ms(self.agent.cursor),
                usage=message_dict(rd.usage),
            )
        elif kind == "clear_audio":
            dropped = self.agent.clear(t_us)
            self.counts.clears += 1
            self.logs.event(
                t_us, "clear_audio", item_id=frame.clear_audio.item_id, dropped_ms=samples_to_ms(dropped)
            )
        elif kind == "error":
            self.logs.error(t_us, frame.error, source="bridge")
        elif kind is not None:
            self.logs.event(t_us, "server", frame=message_dict(frame))

    def _agent_audio(self, t_us: int, audio: pb.AudioFrame) -> None:
        samples, rate = self._samples(t_us, audio, self.output_format, "agent")
        if samples is None:
            return
        self.counts.agent_audio_frames += 1
        start = self.agent.place_played(t_us, samples, rate)
        first_of_response = bool(self.book.response_id) and not self.book.response_audio_seen
        if audio.item_id != self.book.agent_item or first_of_response:
            self.book.agent_item = audio.item_id
            self.logs.event(
                t_us,
                "agent_audio_start",
                item_id=audio.item_id,
                response_id=self.book.response_id,
                first_of_response=first_of_response,
                start_ms=samples_to_ms(start),
            )
        self.book.response_audio_seen = True

    def _samples(
        self, t_us: int, audio: pb.AudioFrame, default: AudioFormat, channel: str
    ) -> tuple[Any, int]:
        try:
            fmt = AudioFormat.from_proto(audio.format) if audio.HasField("format") else default
            validate_frame(audio.data, fmt, max_ms=MAX_FRAME_MS)
        except RealtimeAudioFormatError as exc:
            self.counts.bad_frames += 1
            frame = exc.to_frame()
            self.logs.error(t_us, frame, source=f"recorder.{channel}_audio")
            return None, 0
        return decode(audio.data, fmt), fmt.sample_rate_hz


def _format_or(msg: pb.AudioFormat, default: str) -> AudioFormat:
    if msg.encoding == pb.AUDIO_ENCODING_UNSPECIFIED:
        return AudioFormat.parse(default)
    try:
        return AudioFormat.from_proto(msg)
    except RealtimeAudioFormatError:
        log.warning("unusable caller format %s; assuming %s", message_dict(msg), default)
        return AudioFormat.parse(default)


def _asdict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def check_spool(spool: SessionSpool) -> tuple[rpb.RecordStart, dict[str, Any]]:
    """(start, checkpoint state) of a spooled session, read without opening any file for writing.

    Raises :class:`SpoolDamaged` naming what is wrong (see :meth:`resume`).
    """
    start = spool.load_start()
    state = load_checkpoint(spool.dir, CHECKPOINT, LEGACY_STATE)
    for name, cls_ in (("counts", Counts), ("book", Bookkeeping)):
        value = state[name]
        unknown = set(value) - set(cls_.__slots__) if isinstance(value, dict) else {"(not an object)"}
        if unknown:
            raise SpoolDamaged(f"checkpoint {name} has unknown keys {', '.join(sorted(unknown))}")
    _check_sizes(spool, state)
    return start, state


def _check_sizes(spool: SessionSpool, state: dict[str, Any]) -> None:
    """Raise :class:`SpoolDamaged` when a spool file is shorter than the checkpoint says (acked data gone)."""
    expected = {
        CALLER: state["caller"]["track"]["extent"] * SAMPLE_BYTES,
        AGENT: state["agent"]["track"]["extent"] * SAMPLE_BYTES,
        EVENTS: state["events_size"],
        SPANS: state["spans_size"],
    }
    for name, size in expected.items():
        path = spool.path(name)
        have = path.stat().st_size if path.exists() else 0
        if have < size:
            raise SpoolDamaged(f"{name} has {have} bytes, the checkpoint covers {size}")
