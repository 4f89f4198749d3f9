"""BridgeSession logic against a scripted in-memory provider: barge-in, steering, tools, caller audio.

No sockets and no fixed sleeps: the provider's output is scripted frame by frame and every wait is on a
condition of the session's observable output (frames written to the caller, calls made on the provider).
"""

from __future__ import annotations

import asyncio

import pytest

from rtvoice.bridge.barge_in import Cut
from rtvoice.v1 import frames_pb2 as pb
from tests.support.scripted_provider import SessionHarness, until

pytestmark = pytest.mark.asyncio


def pcm(ms: int, rate: int = 16000) -> bytes:
    return b"\x10\x00" * (rate * ms // 1000)


async def test_vad_barge_in_cuts_at_the_played_position_and_drops_late_output() -> None:
    async with SessionHarness() as h:
        p = h.provider
        p.respond("r1", "item_a", [100] * 10)  # 1 s of agent audio
        await until(lambda: h.audio_ms("item_a") >= 900)
        h.send(pb.ClientFrame(playback_mark=pb.PlaybackMark(item_id="item_a", played_ms=300)))
        await until(lambda: h.session.barge_in.played_ms("item_a") == 300)
        p.push(pb.ServerFrame(speech_started=pb.SpeechStarted(audio_start_ms=1200, item_id="u1")))
        (cut,) = await p.wait_call("interrupt")
        assert cut == Cut("item_a", 300, 1000)
        clear = await h.wait_written("clear_audio")
        assert clear.clear_audio.item_id == "item_a"
        assert h.kinds().index("speech_started") < h.kinds().index("clear_audio")
        # late output of the cut response: audio, transcript deltas and tool calls are dropped
        sent_before = h.audio_ms("item_a")
        late_call = pb.ToolCall(call_id="c_late", name="lookup", arguments_json="{}")
        p.push(
            p.audio_frame("item_a", 100),
            pb.ServerFrame(transcript=pb.TranscriptFrame(role=pb.ROLE_ASSISTANT, item_id="item_a", text="x")),
            pb.ServerFrame(tool_call=late_call),
        )
        p.done("r1", "cancelled")
        await h.wait_written("response_done")
        p.respond("r2", "item_b", [100, 100])
        p.done("r2")
        await h.wait_written("response_done", 2)
        await until(lambda: h.audio_ms("item_b") >= 190)
        assert h.audio_ms("item_a") == sent_before
        assert not h.of("transcript") and not h.of("tool_call")
        assert "barge_in" in h.recorder.span_names()


async def test_caller_interrupt_with_all_audio_still_queued_deletes_the_item() -> None:
    async with SessionHarness() as h:
        p = h.provider
        h.hold()  # the caller writer is stuck: agent audio stays queued in the outbox
        p.respond("r1", "item_a", [100, 100, 100])
        await until(lambda: len(h.session.outbox) >= 2)
        h.send(pb.ClientFrame(interrupt=pb.InterruptFrame()))
        (cut,) = await p.wait_call("interrupt")
        assert cut is not None and cut.item_id == "item_a" and cut.played_ms == 0
        h.release()
        clear = await h.wait_written("clear_audio")
        assert clear.clear_audio.item_id == "item_a"
        assert h.audio_ms("item_a") <= 100  # at most the one chunk in the writer's hands


async def test_vad_speech_without_agent_audio_is_not_a_barge_in() -> None:
    async with SessionHarness() as h:
        p = h.provider
        p.push(pb.ServerFrame(speech_started=pb.SpeechStarted(audio_start_ms=40, item_id="u1")))
        p.push(pb.ServerFrame(speech_stopped=pb.SpeechStopped(audio_end_ms=900, item_id="u1")))
        await h.wait_written("speech_stopped")
        assert not p.of("interrupt") and not h.of("clear_audio")
        assert h.of("speech_started")[0].speech_started.audio_start_ms == 40


async def test_steered_turn_detection_decides_whether_vad_speech_barges_in() -> None:
    async with SessionHarness({"turnDetection": {"type": "server_vad", "interruptResponse": False}}) as h:
        p = h.provider
        p.respond("r1", "item_a", [100] * 5)
        await until(lambda: h.audio_ms("item_a") >= 400)
        p.push(pb.ServerFrame(speech_started=pb.SpeechStarted(item_id="u1")))
        p.push(pb.ServerFrame(speech_stopped=pb.SpeechStopped(item_id="u1")))
        await h.wait_written("speech_stopped")
        assert not p.of("interrupt") and not h.of("clear_audio")  # interruptResponse: false
        p.done("r1")
        # a steer with turn detection (interruptResponse defaults to true) goes to the provider as is
        td = pb.TurnDetection(type="server_vad", silence_duration_ms=400)
        h.send(pb.ClientFrame(steer=pb.SteerFrame(voice="cedar", turn_detection=td)))
        (steer,) = await p.wait_call("steer")
        assert steer.voice == "cedar" and steer.turn_detection.silence_duration_ms == 400
        p.respond("r2", "item_b", [100] * 5)
        await until(lambda: h.audio_ms("item_b") >= 400)
        p.push(pb.ServerFrame(speech_started=pb.SpeechStarted(item_id="u2")))
        (cut,) = await p.wait_call("interrupt")
        assert cut is not None and cut.item_id == "item_b"
        assert (await h.wait_written("clear_audio")).clear_audio.item_id == "item_b"


async def test_unknown_tool_gets_a_typed_error_result_and_a_span() -> None:
    async with SessionHarness() as h:
        p = h.provider
        p.push(pb.ServerFrame(response_started=pb.ResponseStarted(response_id="r1")))
        p.push(pb.ServerFrame(tool_call=pb.ToolCall(call_id="c1", name="nope", arguments_json="{}")))
        (result,) = await p.wait_call("send_tool_result")
        assert result.call_id == "c1" and result.is_error and "unknown tool" in result.output
        written = await h.wait_written("tool_result")
        assert written.tool_result.call_id == "c1"
        assert h.kinds().index("tool_call") < h.kinds().index("tool_result")
        await until(lambda: "tool.call" in h.recorder.span_names())


async def test_tool_cancellation_stops_the_call_without_a_result() -> None:
    spec = {
        "tools": [
            {
                "name": "slow",
                "description": "never answers in time",
                "endpoint": "http://127.0.0.1:9/never",
                "timeoutMs": 30000,
                "parameters": {"type": "object", "properties": {}},
            }
        ]
    }
    async with SessionHarness(spec) as h:
        p = h.provider
        p.push(pb.ServerFrame(tool_call=pb.ToolCall(call_id="c1", name="slow", arguments_json="{}")))
        await h.wait_written("tool_call")
        p.push(pb.ServerFrame(tool_cancellation=pb.ToolCancellation(call_ids=["c1"])))
        await h.wait_written("tool_cancellation")
        await until(lambda: not h.session.tools.running)
        assert not p.of("send_tool_result")


async def test_caller_audio_is_checked_converted_and_clocked() -> None:
    async with SessionHarness() as h:
        h.send_audio(b"\x01\x02\x03")  # odd PCM16 length
        err = await h.wait_written("error")
        assert err.error.code == "odd_pcm_length" and not err.error.fatal
        for _ in range(5):
            h.send_audio(pcm(20))
        await until(lambda: h.session.caller_in.clock.position_us == 100_000)
        # 100 ms at 16 kHz reach the provider as 16 kHz PCM16 (same rate: passthrough)
        await until(lambda: len(h.provider.audio) == 3200)


async def test_a_response_that_stops_is_cancelled_with_a_typed_error_and_the_next_one_works() -> None:
    async with SessionHarness({"session": {"responseTimeoutMs": 500}}) as h:
        p = h.provider
        p.respond("r1", "item_a", [100])  # some audio, then nothing: the provider stopped answering
        err = await h.wait_written("error")
        assert err.error.code == "response_timeout" and err.error.kind == pb.ERROR_KIND_READ_TIMEOUT
        assert not err.error.fatal
        await p.wait_call("abandon_response")
        done = await h.wait_written("response_done")
        assert (done.response_done.response_id, done.response_done.status_reason) == (
            "r1",
            "response_timeout",
        )
        p.push(p.audio_frame("item_a", 100))  # late output of the abandoned response: dropped
        p.done("r1", "cancelled")  # its late end: not passed on a second time
        p.respond("r2", "item_b", [100])
        p.done("r2")
        await h.wait_written("response_done", 2)
        assert [d.response_done.response_id for d in h.of("response_done")] == ["r1", "r2"]
        assert h.audio_ms("item_a") <= 100 and h.audio_ms("item_b") > 0
        assert any(s.name == "error" and s.attributes["code"] == "response_timeout" for s in h.recorder.spans)


async def test_a_turn_that_gets_no_answer_at_all_times_out() -> None:
    async with SessionHarness({"session": {"responseTimeoutMs": 500}}) as h:
        p = h.provider
        p.push(pb.ServerFrame(speech_started=pb.SpeechStarted(audio_start_ms=100, item_id="u1")))
        p.push(pb.ServerFrame(speech_stopped=pb.SpeechStopped(audio_end_ms=900, item_id="u1")))
        err = await h.wait_written("error")
        assert err.error.code == "response_timeout"
        await p.wait_call("abandon_response")
        assert not h.of("response_done")  # nothing had started: nothing to end for the caller


async def test_a_tool_that_never_returns_gets_an_error_result_in_time() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # accept the request, never answer
        await asyncio.Event().wait()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tool = {
        "name": "stuck",
        "description": "never answers",
        "endpoint": f"http://127.0.0.1:{port}/stuck",
        "timeoutMs": 30000,
        "parameters": {"type": "object", "properties": {}},
    }
    try:
        async with SessionHarness({"tools": [tool], "session": {"toolTimeoutMs": 600}}) as h:
            p = h.provider
            p.push(pb.ServerFrame(response_started=pb.ResponseStarted(response_id="r1")))
            p.push(pb.ServerFrame(tool_call=pb.ToolCall(call_id="c1", name="stuck", arguments_json="{}")))
            p.done("r1")
            (result,) = await p.wait_call("send_tool_result")
            assert result.call_id == "c1" and result.is_error and "did not return" in result.output
            err = await h.wait_written("error")
            assert err.error.code == "tool_timeout" and not err.error.fatal
            await h.wait_written("tool_result")
            assert not h.session.tools.running
    finally:
        server.close()
