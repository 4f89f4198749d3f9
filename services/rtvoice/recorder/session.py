"""One session being recorded: applies ``RecordFrame`` messages to the session's spool as they arrive.

Audio goes to the two tracks (tracks.py), everything else to ``events.jsonl`` and ``spans.jsonl``; the
small state needed to continue after a recorder restart is checkpointed to ``state.json`` by
:meth:`SessionRecorder.checkpoint` (the server acks ``durable_seq`` right after). Memory is O(1) in the
session length.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from rtvoice.core.audio import AudioFormat, decode, validate_frame
from rtvoice.core.errors import ERROR_KIND_NAMES, RealtimeAudioFormatError
from rtvoice.core.spans import Span, new_trace_id
from rtvoice.recorder import LINK_STATS_SPAN
from rtvoice.recorder.spool import AGENT, CALLER, EVENTS, SPANS, JsonLog, SessionSpool
from rtvoice.recorder.tracks import (
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
    errors: int = 0
    bad_frames: int = 0
    duplicates: int = 0
    clears: int = 0
    resumes: int = 0


@dataclass(slots=True)
class Bookkeeping:
    """Per-session facts that outlive a single frame (checkpointed with the tracks)."""

    trace_id: str = ""
    last_t_us: int = 0
    end_reason: str = ""
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
    checkpoint (what the recorder may ack). Frames with ``seq <= processed_seq`` are duplicates.
    """

    def __init__(
        self,
        spool: SessionSpool,
        start: rpb.RecordStart,
        state: dict[str, Any] | None = None,
        sink: SpanSink | None = None,
    ) -> None:
        st = state or {}
        self.spool = spool
        self.start = start
        self.sink = sink
        self.session_id = spool.session_id
        self.caller: CallerTrack = caller_track_from(spool.path(CALLER), st.get("caller"))
        self.agent: Track = agent_track_from(spool.path(AGENT), st.get("agent"))
        self.events = JsonLog(spool.path(EVENTS), st.get("events_size", 0))
        self.spans = JsonLog(spool.path(SPANS), st.get("spans_size", 0))
        self.durable_seq: int = st.get("durable_seq", 0)
        self.processed_seq = self.durable_seq
        self.closed = False
        self.counts = Counts(**st.get("counts", {}))
        self.book = Bookkeeping(**st.get("book", {}))
        if not self.book.trace_id:
            self.book.trace_id = start.session.metadata.get("trace_id", "")
        sess = start.session
        self.input_format = _format_or(sess.input_format, "pcm16_16k")
        self.output_format = _format_or(sess.output_format, "pcm16_16k")

    @classmethod
    def create(cls, spool: SessionSpool, first: rpb.RecordFrame, sink: SpanSink | None) -> SessionRecorder:
        """A new session from its first frame (``first.start``); writes start.pb and a first checkpoint."""
        spool.create(first.start)
        rec = cls(spool, first.start, None, sink)
        rec.counts.spans_dropped_bridge = first.start.spans_dropped
        rec.processed_seq = first.seq
        rec.checkpoint()
        return rec

    @classmethod
    def resume(cls, spool: SessionSpool, sink: SpanSink | None) -> SessionRecorder:
        """Continue a spooled session from its last checkpoint (after a recorder restart)."""
        return cls(spool, spool.load_start(), spool.load_state(), sink)

    # ----------------------------------------------------------------------------------------- state

    def note_resumed(self, start: rpb.RecordStart) -> None:
        """A re-opened stream: count it and take the bridge's latest drop counter."""
        self.counts.resumes += 1
        self.counts.spans_dropped_bridge = max(self.counts.spans_dropped_bridge, start.spans_dropped)

    def checkpoint(self) -> int:
        """Persist the state covering every frame applied so far; returns the new ``durable_seq``."""
        if self.closed:
            return self.durable_seq
        state = {
            "durable_seq": self.processed_seq,
            "caller": track_state_dict(self.caller),
            "agent": track_state_dict(self.agent),
            "events_size": self.events.size,
            "spans_size": self.spans.size,
            "counts": _asdict(self.counts),
            "book": _asdict(self.book),
        }
        self.spool.save_state(state)
        self.durable_seq = self.processed_seq
        return self.durable_seq

    @property
    def ended(self) -> bool:
        """True once the EndFrame was applied."""
        return self.book.end_t_us >= 0

    def release(self) -> None:
        """Close the spool files without flushing anything (this process stops; the spool stays)."""
        if self.closed:
            return
        self.closed = True
        for track in (self.caller, self.agent):
            track.close()
        self.events.close()
        self.spans.close()

    def close_files(self) -> None:
        """Flush the resamplers' tails and close the logs (before finalize; the tracks stay readable)."""
        self.flush_pending_spans(new_trace_id())
        self.closed = True
        for track in (self.caller, self.agent):
            track.finish()
        self.events.close()
        self.spans.close()

    # ----------------------------------------------------------------------------------------- frames

    def apply(self, frame: rpb.RecordFrame) -> bool:
        """Apply one frame; returns False for a duplicate (``seq <= processed_seq``), which is ignored.

        Bad audio is counted (``bad_frames``) and recorded as an error span, never raised.
        """
        if self.closed:
            raise RuntimeError(f"session {self.session_id} is closed")
        if frame.seq <= self.processed_seq:
            self.counts.duplicates += 1
            return False
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
            self._span(Span.from_proto(frame.span))
        elif kind == "end":
            self.book.end_reason = frame.end.reason or "end"
            self.book.end_t_us = t_us
            self._event(t_us, "end", reason=self.book.end_reason)
        return True

    def _client(self, t_us: int, frame: pb.ClientFrame) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "audio":
            samples, rate = self._samples(t_us, frame.audio, self.input_format, "caller")
            if samples is not None:
                self.counts.caller_audio_frames += 1
                self.caller.place_caller(t_us, samples, rate)
        elif kind == "text":
            self._event(t_us, "text_input", text=frame.text.text)
        elif kind is not None:
            self._event(t_us, "client", frame=message_dict(frame))

    def _server(self, t_us: int, frame: pb.ServerFrame) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "audio":
            self._agent_audio(t_us, frame.audio)
        elif kind == "transcript":
            tr = frame.transcript
            role = _ROLES.get(tr.role, "unknown")
            self._event(t_us, "transcript", role=role, item_id=tr.item_id, text=tr.text, final=tr.final)
        elif kind == "speech_started":
            ss = frame.speech_started
            at = self.caller.session_ms_of_audio_ms(ss.audio_start_ms)
            self._event(
                t_us, "speech_started", item_id=ss.item_id, audio_start_ms=ss.audio_start_ms, at_ms=at
            )
        elif kind == "speech_stopped":
            sp = frame.speech_stopped
            at = self.caller.session_ms_of_audio_ms(sp.audio_end_ms)
            self._event(t_us, "speech_stopped", item_id=sp.item_id, audio_end_ms=sp.audio_end_ms, at_ms=at)
        elif kind == "response_started":
            self.book.response_id = frame.response_started.response_id
            self.book.response_audio_seen = False
            self._event(t_us, "response_started", response_id=self.book.response_id)
        elif kind == "response_done":
            rd = frame.response_done
            self._event(
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
            self._event(
                t_us, "clear_audio", item_id=frame.clear_audio.item_id, dropped_ms=samples_to_ms(dropped)
            )
        elif kind == "error":
            self._error(t_us, frame.error, source="bridge")
        elif kind is not None:
            self._event(t_us, "server", frame=message_dict(frame))

    def _agent_audio(self, t_us: int, audio: pb.AudioFrame) -> None:
        samples, rate = self._samples(t_us, audio, self.output_format, "agent")
        if samples is None:
            return
        self.counts.agent_audio_frames += 1
        start = self.agent.place_played(t_us, samples, rate)
        first_of_response = bool(self.book.response_id) and not self.book.response_audio_seen
        if audio.item_id != self.book.agent_item or first_of_response:
            self.book.agent_item = audio.item_id
            self._event(
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
            self._error(t_us, frame, source=f"recorder.{channel}_audio")
            return None, 0
        return decode(audio.data, fmt), fmt.sample_rate_hz

    def _error(self, t_us: int, err: pb.ErrorFrame, source: str) -> None:
        """Count an error frame, log it as an event, and make an ``rtvoice.error`` span of it."""
        self.counts.errors += 1
        fields: dict[str, Any] = {
            "kind": ERROR_KIND_NAMES.get(err.kind, "unspecified"),
            "code": err.code,
            "message": err.message,
            "retryable": err.retryable,
            "fatal": err.fatal,
        }
        self._event(t_us, "error", source=source, **fields)
        at_ns = self.start.session.started_unix_ns + t_us * 1000
        attrs = {f"error.{k}": v for k, v in fields.items()}
        attrs.update(source=source, session_ms=t_us / 1000)
        span: dict[str, Any] = {
            "name": "rtvoice.error",
            "start_unix_ns": at_ns,
            "end_unix_ns": at_ns,
            "attributes": attrs,
        }
        if self.book.trace_id:
            self._span(Span(trace_id=self.book.trace_id, **span))
        elif len(self.book.pending_spans) < 100:  # wait for the bridge's trace id
            self.book.pending_spans.append(span)
        else:
            self.flush_pending_spans(new_trace_id())
            self._span(Span(trace_id=self.book.trace_id, **span))

    def flush_pending_spans(self, trace_id: str) -> None:
        """Give the recorder's own spans the session's trace id (or ``trace_id`` when none is known)."""
        self.book.trace_id = self.book.trace_id or trace_id
        pending, self.book.pending_spans = self.book.pending_spans, []
        for span in pending:
            self._span(Span(trace_id=self.book.trace_id, **span))

    def _span(self, span: Span) -> None:
        if span.name == LINK_STATS_SPAN:
            attrs = span.attributes
            self.counts.spans_dropped_bridge = max(
                self.counts.spans_dropped_bridge, int(attrs.get("spans_dropped", 0))
            )
            self.counts.frames_dropped_bridge = max(
                self.counts.frames_dropped_bridge, int(attrs.get("frames_dropped", 0))
            )
            return
        if not self.book.trace_id and span.trace_id:
            self.flush_pending_spans(span.trace_id)
        self.counts.spans += 1
        doc = span.to_dict(self.session_id)
        self.spans.append(doc)
        if self.sink is not None and not self.sink.offer(doc):
            self.counts.spans_dropped_sink += 1

    def _event(self, t_us: int, type_: str, **fields: Any) -> None:
        self.events.append({"t_ms": t_us / 1000, "type": type_, **fields})


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
