"""A spoken turn through the offline engine over a real WebSocket (server VAD, PCM 24 kHz and µ-law)."""

from __future__ import annotations

import numpy as np

from rtvoice.core import g711
from rtvoice.core.audio import resample_once
from rtvoice.localrt.asr import get_recognizer
from tests.support.localrt import RealtimeTestClient, local_realtime, pcm16_to_16k, speech_pcm24k
from tests.support.speech import synthesize_pcm16

QUESTION = "what is the weather today"
REPLY = "you said what is the weather today"
PHRASES = [QUESTION, REPLY, "hello there", "turn on the lights"]

TURN_ORDER = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]
STREAMED = {"response.output_audio.delta", "response.output_audio_transcript.delta"}
ASYNC = {"conversation.item.input_audio_transcription.completed"}


async def test_spoken_turn_pcm24k() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        created = await client.recv()
        assert created["type"] == "session.created"
        await client.update_session(audio={"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}})
        client.events.clear()
        await client.append_audio(speech_pcm24k(QUESTION, lead_ms=300, tail_ms=900))
        done = await client.wait_for("response.done")
        if not client.of_type("conversation.item.input_audio_transcription.completed"):
            await client.wait_for("conversation.item.input_audio_transcription.completed")

    order = [e["type"] for e in client.events if e["type"] not in STREAMED | ASYNC]
    assert order == TURN_ORDER
    started = client.of_type("input_audio_buffer.speech_started")[0]
    stopped = client.of_type("input_audio_buffer.speech_stopped")[0]
    speech_ms = len(speech_pcm24k(QUESTION, 0, 0)) / 48
    assert 250 <= started["audio_start_ms"] <= 400
    assert 300 + speech_ms - 150 <= stopped["audio_end_ms"] <= 300 + speech_ms + 150
    assert (
        started["item_id"]
        == stopped["item_id"]
        == client.of_type("input_audio_buffer.committed")[0]["item_id"]
    )
    completed = client.of_type("conversation.item.input_audio_transcription.completed")[0]
    assert completed["transcript"] == QUESTION
    assert done["response"]["status"] == "completed"
    transcript = client.of_type("response.output_audio_transcript.done")[0]["transcript"]
    assert transcript == "You said: what is the weather today."
    deltas = "".join(e["delta"] for e in client.of_type("response.output_audio_transcript.delta"))
    assert deltas == transcript
    audio = client.audio_bytes()
    assert len(audio) > 48 * 1000  # > 1 s of 24 kHz PCM16
    heard = get_recognizer().recognize(pcm16_to_16k(audio, 24000), PHRASES)
    assert heard == REPLY
    usage = done["response"]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0


async def test_spoken_turn_mulaw_in_and_out() -> None:
    pcm24 = np.frombuffer(speech_pcm24k(QUESTION), dtype="<i2")
    ulaw = g711.pcm16_to_ulaw(resample_once(pcm24, 24000, 8000))
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        fmt = {"type": "audio/pcmu"}
        updated = await client.update_session(audio={"input": {"format": fmt}, "output": {"format": fmt}})
        assert updated["session"]["audio"]["output"]["format"] == fmt
        await client.append_audio(ulaw, chunk_bytes=800)  # 100 ms of µ-law
        done = await client.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    assert client.of_type("conversation.item.input_audio_transcription.completed") == []  # transcription off
    transcript = client.of_type("response.output_audio_transcript.done")[0]["transcript"]
    assert transcript == "You said: what is the weather today."  # the µ-law question was understood
    # µ-law output: 8 bytes/ms, as long as the same reply synthesized at 8 kHz (narrowband audio is not
    # re-recognized: pocketsphinx's wideband model is unreliable on it)
    audio = client.audio_bytes()
    expected_ms = len(synthesize_pcm16(transcript, 8000)) / 16
    assert abs(len(audio) / 8 - expected_ms) < 100
    assert np.abs(g711.ulaw_to_pcm16(audio).astype(np.int32)).max() > 3000  # speech, not silence
