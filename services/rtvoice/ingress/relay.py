"""Bridge → caller: turns ``ServerFrame`` s into caller protocol v1 events and audio in the bounded queue.

Keeps the per-session state the events need: which agent item the binary audio belongs to (an
``audio.started`` precedes each item's first audio), the current response id, and the first-audio latency
at the ingress (:func:`rtvoice.core.latency.first_audio_latency_from_monotonic`: end of the caller's turn —
``speech.stopped``, or a ``text`` / ``turn.end`` from the caller — to the first audio of the response going
out to the caller). On ``clear_audio`` the audio still queued toward the caller is
dropped before ``audio.clear`` goes out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rtvoice.core.audio import AudioConverter, AudioFormat
from rtvoice.core.errors import RealtimeError
from rtvoice.core.latency import first_audio_latency_from_monotonic
from rtvoice.core.metrics import service_metrics
from rtvoice.ingress import protocol as proto
from rtvoice.ingress.limits import OutboundQueue
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger("rtvoice.ingress.relay")


class AgentRelay:
    """Relays one session's bridge frames to ``out``; ``send_event`` queues a JSON event (the session
    handles a full queue). Audio in another format than ``output_format`` is converted (defensive: the
    bridge should already send the caller's format). ``OutboundQueue.put_audio`` never raises."""

    def __init__(
        self, out: OutboundQueue, output_format: AudioFormat, send_event: Callable[[dict[str, Any]], None]
    ) -> None:
        self.out = out
        self.output_format = output_format
        self.send_event = send_event
        self._out_fmt_pb = output_format.to_proto()
        self._converter: AudioConverter | None = None
        self._current_item: tuple[str, int] | None = None
        self._response_id = ""
        self._turn_end_at: float | None = None
        self._response_latency_ms: float | None = None

    def turn_ended(self) -> None:
        """The caller ended its turn (``text`` / ``turn.end``): the latency clock starts now."""
        self._turn_end_at = time.monotonic()

    def relay(self, frame: pb.ServerFrame) -> None:
        """One bridge frame (not ``ready`` / ``end``, which the session handles) → caller events / audio."""
        kind = frame.WhichOneof("frame")
        if kind == "audio":
            self._relay_audio(frame.audio)
            return
        if kind == "error":
            self.send_event(proto.error_event(frame.error))
            return
        if kind == "response_started":
            self._response_id = frame.response_started.response_id
            self._response_latency_ms = None
        elif kind == "response_done":
            self.send_event(proto.response_done_event(frame.response_done, self._response_latency_ms))
            self._current_item = None
            self._turn_end_at = None
            return
        elif kind == "speech_stopped":
            self._turn_end_at = time.monotonic()
        elif kind == "clear_audio":
            self.out.drop_audio()
            self._current_item = None
        event = proto.event_from_server_frame(frame)
        if event is not None:
            self.send_event(event)

    def _relay_audio(self, audio: pb.AudioFrame) -> None:
        data = audio.data
        if not data:
            return
        if audio.format.encoding and audio.format != self._out_fmt_pb:
            data = self._convert(audio)
            if not data:
                return
        item = (audio.item_id, audio.content_index)
        if item != self._current_item:
            self._current_item = item
            latency_ms = None
            if self._turn_end_at is not None and self._response_latency_ms is None:
                latency_ms = first_audio_latency_from_monotonic(self._turn_end_at, time.monotonic())
                service_metrics("ingress").first_audio_ms.observe(latency_ms)
                self._response_latency_ms = latency_ms
            self.send_event(
                proto.audio_started_event(audio.item_id, audio.content_index, self._response_id, latency_ms)
            )
        self.out.put_audio(data)

    def _convert(self, audio: pb.AudioFrame) -> bytes:
        try:
            src = AudioFormat.from_proto(audio.format)
        except RealtimeError as err:
            self.send_event(proto.error_event(err))
            return b""
        if self._converter is None or self._converter.src != src:
            log.warning(
                "bridge sent %s audio, the caller wants %s; converting", src.name, self.output_format.name
            )
            self._converter = AudioConverter(src, self.output_format)
        return self._converter.convert(audio.data)
