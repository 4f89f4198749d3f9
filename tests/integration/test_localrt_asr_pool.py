"""The recognizer pool survives sessions that vanish mid-recognition; overload is a typed error."""

from __future__ import annotations

import asyncio
import threading

import pytest
import websockets

from rtvoice.localrt.decoder_pool import DecoderPool, RecognizerBusyError
from rtvoice.localrt.options import EngineOptions
from tests.support.gemini_calls import eventually
from tests.support.localrt import RealtimeTestClient, local_realtime_server
from tests.support.speech_sets import synthetic_set
from tests.support.spoken_turns import configure, spoken_turn, wire_audio


async def test_pool_is_cancellation_safe_and_bounded() -> None:
    gate = threading.Event()
    pool: DecoderPool[object] = DecoderPool(object, size=1)
    slot = await pool.acquire()
    job = slot.submit(lambda _d: gate.wait(10))
    pool.release_when_done(slot, job)
    waiters = [asyncio.ensure_future(pool.acquire(30)) for _ in range(50)]
    await asyncio.sleep(0)
    assert pool.waiting == 50
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert pool.waiting == 0
    with pytest.raises(RecognizerBusyError):
        await pool.acquire(0.05)
    gate.set()  # the job ends on its thread and gives the slot back by itself
    await eventually(lambda: pool.in_use == 0, 5)
    again = await pool.acquire(1)
    pool.release(again)


@pytest.mark.slow
async def test_200_sessions_cancelled_mid_recognition_then_a_turn_is_answered() -> None:
    utt = synthetic_set()[0]
    fmt, data, _ = wire_audio(utt)
    tail = b"\0\0" * 24 * 900
    async with local_realtime_server(options=EngineOptions()) as server:

        async def vanish() -> None:
            async with RealtimeTestClient.connect(server.url) as client:
                await client.recv()
                await client.append_audio(data + tail, chunk_bytes=48000)
                await client.wait_for("input_audio_buffer.speech_stopped")
            # leaving the block closes the socket while the transcript is being decoded

        for _ in range(10):  # 10 waves of 20 concurrent sessions
            results = await asyncio.gather(*(vanish() for _ in range(20)), return_exceptions=True)
            assert all(r is None or isinstance(r, websockets.ConnectionClosed) for r in results), results
        pool = server.recognizer.pool  # type: ignore[attr-defined]
        await eventually(lambda: (pool.in_use, pool.waiting) == (0, 0), 120)
        async with RealtimeTestClient.connect(server.url) as client:
            await client.recv()
            await configure(client, fmt)
            result = await spoken_turn(client, utt)
            assert "weather" in result.text.lower(), result
            assert client.of_type("response.output_audio.delta")
            assert not [e for e in client.events if e["type"] == "error"]


async def test_overload_is_a_typed_busy_error_and_the_session_goes_on() -> None:
    utt = synthetic_set()[2]
    fmt, data, _ = wire_audio(utt)
    async with local_realtime_server(options=EngineOptions()) as server:
        rec = server.recognizer
        pool, wait_s = rec.pool, rec.wait_s  # type: ignore[attr-defined]
        held = [await pool.acquire() for _ in range(pool.size)]  # every decoder busy elsewhere
        rec.wait_s = 0.3  # type: ignore[attr-defined]
        try:
            async with RealtimeTestClient.connect(server.url) as client:
                await client.recv()
                await configure(client, fmt)
                await client.append_audio(data + b"\0\0" * 24 * 900, chunk_bytes=48000)
                err = (await client.wait_for("error"))["error"]
                assert (err["type"], err["code"]) == ("server_error", "recognizer_busy"), err
                failed = await client.wait_for("conversation.item.input_audio_transcription.failed")
                assert failed["error"]["code"] == "recognizer_busy"
                for slot in held:
                    pool.release(slot)
                held = []
                await client.wait_for("response.done")
                result = await spoken_turn(client, utt)  # decoders free again: recognized as usual
                assert "kitchen" in result.text.lower(), result
        finally:
            rec.wait_s = wait_s  # type: ignore[attr-defined]
            for slot in held:
                pool.release(slot)


@pytest.mark.slow
async def test_burst_of_malformed_messages_with_speech_leaves_turns_working() -> None:
    utt = synthetic_set()[1]
    fmt, data, _ = wire_audio(utt)
    bad = ["{", "[]", '{"type": 5}', '{"type": "input_audio_buffer.append", "audio": "%%%"}', "x" * 300]
    async with local_realtime_server(options=EngineOptions()) as server:

        async def burst() -> int:
            errors = 0
            async with RealtimeTestClient.connect(server.url) as client:
                await client.recv()
                for i in range(500):  # 10 x 500 = 5,000 malformed messages, speech in between
                    await client.ws.send(bad[i % len(bad)])
                    if i % 100 == 0:
                        await client.append_audio(data, chunk_bytes=48000)
                await client.ws.send('{"type": "input_audio_buffer.clear"}')
                while errors < 500:
                    event = await client.recv()
                    errors += event["type"] == "error"
            return errors

        assert await asyncio.gather(*(burst() for _ in range(10))) == [500] * 10
        pool = server.recognizer.pool  # type: ignore[attr-defined]
        await eventually(lambda: (pool.in_use, pool.waiting) == (0, 0), 120)
        async with RealtimeTestClient.connect(server.url) as client:
            await client.recv()
            await configure(client, fmt)
            result = await spoken_turn(client, utt)
            assert "table" in result.text.lower(), result
