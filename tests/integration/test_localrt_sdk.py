"""The ``openai`` package's own realtime client completes a spoken turn against the offline engine."""

from __future__ import annotations

import base64

import openai

from tests.support.localrt import local_realtime, speech_pcm24k

PHRASES = ["what is the weather today", "you said what is the weather today"]


async def test_openai_sdk_spoken_turn() -> None:
    async with local_realtime(PHRASES, api_key="sk-local") as url:
        base = url.removesuffix("/realtime")
        client = openai.AsyncOpenAI(api_key="sk-local", websocket_base_url=base)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(
                session={"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
            )
            audio = speech_pcm24k("what is the weather today")
            for i in range(0, len(audio), 4800):
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i : i + 4800]).decode())
            seen: list[str] = []
            transcript = ""
            async for event in conn:
                seen.append(event.type)
                if event.type == "response.output_audio_transcript.done":
                    transcript = event.transcript
                if event.type == "response.done":
                    status = event.response.status
                    break
        await client.close()
    assert status == "completed"
    assert transcript == "You said: what is the weather today."
    assert "input_audio_buffer.speech_started" in seen and "response.output_audio.delta" in seen
