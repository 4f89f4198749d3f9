"""Drive spoken turns through the offline engine's WebSocket the way a client does (tests and bench).

:func:`spoken_turn` appends one utterance (with silence around it) in the session's input format and
returns the user transcript(s) the engine produced for it, plus the time from the end of the speech in
the audio (the last sample above -40 dBFS, not the end of the clip) to the first
``response.output_audio.delta``. 8 kHz audio goes in as G.711 µ-law
(``audio/pcmu``, as from a telephone line); 16 kHz audio as ``audio/pcm`` 24 kHz.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass

import numpy as np

from rtvoice.core.audio import FORMATS, encode, resample_once
from tests.support.localrt import RealtimeTestClient
from tests.support.speech_sets import Utterance

FRAME_MS = 20
LEAD_MS = 400  # silence before each utterance
VOICED_LEVEL = 328  # -40 dBFS: above the noise floor of the recordings and espeak-ng's silence


@dataclass(frozen=True)
class TurnResult:
    """User transcripts of one utterance (the VAD may split it) and end of speech → first audio (s)."""

    transcripts: list[str]
    first_audio_s: float | None

    @property
    def text(self) -> str:
        return " ".join(t for t in self.transcripts if t)


def wire_audio(utt: Utterance, lead_ms: int = LEAD_MS) -> tuple[str, bytes, int]:
    """(GA format type, bytes to append, bytes per 20 ms) for ``utt`` with ``lead_ms`` of silence first."""
    lead = np.zeros(utt.rate_hz * lead_ms // 1000, np.int16)
    samples = np.concatenate([lead, utt.samples])
    if utt.rate_hz == 8000:
        return "audio/pcmu", encode(samples, FORMATS["g711_mulaw"]), 8 * FRAME_MS
    pcm24 = resample_once(samples, utt.rate_hz, 24000)
    return "audio/pcm", pcm24.astype("<i2").tobytes(), 24 * FRAME_MS * 2


def voiced_end_s(utt: Utterance, lead_ms: int = LEAD_MS) -> float:
    """Where the voice ends in :func:`wire_audio`'s audio (s): the last sample above -40 dBFS."""
    loud = np.nonzero(np.abs(utt.samples.astype(np.int32)) > VOICED_LEVEL)[0]
    last = int(loud[-1]) + 1 if loud.size else utt.samples.size
    return lead_ms / 1000 + last / utt.rate_hz


async def configure(client: RealtimeTestClient, format_type: str) -> None:
    """Input format, input transcription on (so transcripts arrive as events)."""
    fmt = {"type": format_type, **({"rate": 24000} if format_type == "audio/pcm" else {})}
    await client.update_session(
        audio={"input": {"format": fmt, "transcription": {"model": "whisper-1"}}},
    )


async def spoken_turn(
    client: RealtimeTestClient, utt: Utterance, realtime: bool = False, tail_ms: int = 2500
) -> TurnResult:
    """Append ``utt`` (then ``tail_ms`` of silence) and collect its transcripts until the answer is done.

    The session must already use the format of :func:`wire_audio` (see :func:`configure`).
    ``realtime``: pace appends at 20 ms per 20 ms frame (latency measurements); else send at once.
    Events are read while audio is sent, so arrival times are true ones. Raises TimeoutError (60 s).
    """
    fmt, data, frame = wire_audio(utt)
    if fmt == "audio/pcmu":
        silence = encode(np.zeros(utt.rate_hz * tail_ms // 1000, np.int16), FORMATS["g711_mulaw"])
    else:
        silence = b"\0\0" * (24 * tail_ms)
    start = len(client.events)
    first_audio: list[float] = []
    step = frame if realtime else frame * 10

    async def read() -> None:
        while True:
            event = await client.recv(60)
            if event["type"] == "response.output_audio.delta" and not first_audio:
                first_audio.append(time.perf_counter())
            if event["type"] == "response.done" and _turn_complete(client, start):
                return

    reader = asyncio.create_task(read())
    speech_end = 0.0
    clock = start_clock = time.perf_counter()  # paced sends follow this clock (no sleep drift)
    try:
        for part, is_tail in ((data, False), (silence, True)):
            for i in range(0, len(part), step):
                chunk = base64.b64encode(part[i : i + step]).decode()
                await client.send({"type": "input_audio_buffer.append", "audio": chunk})
                if realtime:
                    clock += FRAME_MS / 1000
                    await asyncio.sleep(max(0.0, clock - time.perf_counter()))
            if not is_tail:
                speech_end = start_clock + voiced_end_s(utt) if realtime else time.perf_counter()
        await asyncio.wait_for(reader, 60)
    finally:
        reader.cancel()
    transcripts = [
        e["transcript"]
        for e in client.events[start:]
        if e["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    return TurnResult(transcripts, first_audio[0] - speech_end if first_audio else None)


_TRANSCRIBED = (
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
)


def _turn_complete(client: RealtimeTestClient, start: int) -> bool:
    """Every utterance since ``start`` ended and was transcribed, and no answer is still running."""
    events = client.events[start:]
    kinds = [e["type"] for e in events]
    started = kinds.count("input_audio_buffer.speech_started")
    if not started or kinds.count("input_audio_buffer.speech_stopped") < started:
        return False
    if sum(kinds.count(k) for k in _TRANSCRIBED) < started:
        return False
    return kinds.count("response.done") >= kinds.count("response.created")
