"""The engine's GA protocol behaviour over a real WebSocket: session.update rules, text turns, manual
commit, cancel, barge-in, truncate, item management, errors, auth and session expiry."""

from __future__ import annotations

import json

import pytest
import websockets

from tests.support.localrt import RealtimeTestClient, local_realtime, speech_pcm24k, validate_server_event

PHRASES = ["what is the weather today", "hello there", "turn on the lights"]
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 30)  # ~90 s of speech


def text_item(text: str, role: str = "user") -> dict[str, object]:
    kind = "input_text" if role == "user" else "output_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


async def error_code(client: RealtimeTestClient) -> str:
    event = await client.wait_for("error")
    return str(event["error"]["code"])


async def test_session_update_rules() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        created = await client.recv()
        assert created["session"]["type"] == "realtime"
        # deliberately invalid events go out raw (RealtimeTestClient.send validates against the client union)
        await client.ws.send(
            json.dumps({"type": "session.update", "session": {"instructions": "x"}, "event_id": "ev1"})
        )
        err = (await client.wait_for("error"))["error"]
        assert (err["code"], err["param"], err["event_id"]) == (
            "missing_required_parameter",
            "session.type",
            "ev1",
        )
        await client.ws.send(
            json.dumps({"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}})
        )
        err = (await client.wait_for("error"))["error"]
        assert (err["code"], err["param"]) == ("unknown_parameter", "session.temperature")
        bad_rate = {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}
        await client.ws.send(
            json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": bad_rate}})
        )
        assert await error_code(client) == "invalid_value"
        updated = await client.update_session(instructions="Be brief.", audio={"output": {"voice": "cedar"}})
        s = updated["session"]
        assert s["instructions"] == "Be brief." and s["audio"]["output"]["voice"] == "cedar"
        assert s["audio"]["input"]["turn_detection"]["type"] == "server_vad"  # untouched fields kept
        s = (await client.update_session(audio={"input": {"turn_detection": None}}))["session"]
        assert s["audio"]["input"]["turn_detection"] is None and s["instructions"] == "Be brief."
        # a text turn makes assistant audio; then the voice is locked
        await client.send({"type": "conversation.item.create", "item": text_item("hello there")})
        await client.send({"type": "response.create"})
        await client.wait_for("response.done")
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}}}
        )
        assert await error_code(client) == "cannot_update_voice"
        await client.update_session(instructions="still fine")  # other fields may still change


async def test_text_turn_and_text_modality() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await client.send({"type": "conversation.item.create", "item": text_item("turn on the lights")})
        added = await client.wait_for("conversation.item.added")
        assert added["item"]["content"][0]["text"] == "turn on the lights"
        await client.wait_for("conversation.item.done")
        await client.send({"type": "response.create"})
        await client.wait_for("response.created")
        await client.send({"type": "response.create"})
        assert await error_code(client) == "conversation_already_has_active_response"
        done = await client.wait_for("response.done")
        item = done["response"]["output"][0]
        assert item["content"][0] == {"type": "output_audio", "transcript": "You said: turn on the lights."}
        assert len(client.audio_bytes()) > 0
        # text modality for one response, out of band
        client.events.clear()
        await client.send(
            {"type": "response.create", "response": {"output_modalities": ["text"], "conversation": "none"}}
        )
        done = await client.wait_for("response.done")
        assert done["response"]["conversation_id"] is None
        text = client.of_type("response.output_text.done")[0]["text"]
        assert "".join(e["delta"] for e in client.of_type("response.output_text.delta")) == text
        assert client.of_type("response.output_audio.delta") == []
        assert client.of_type("conversation.item.added") == []


async def test_manual_commit_then_response() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await client.update_session(
            audio={"input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}}
        )
        await client.append_audio(b"\0\0" * 24 * 50)  # 50 ms
        await client.send({"type": "input_audio_buffer.commit"})
        assert await error_code(client) == "input_audio_buffer_commit_empty"
        await client.send({"type": "input_audio_buffer.clear"})
        await client.wait_for("input_audio_buffer.cleared")
        await client.append_audio(speech_pcm24k("hello there", 200, 300))
        await client.send({"type": "input_audio_buffer.commit"})
        committed = await client.wait_for("input_audio_buffer.committed")
        transcript = await client.wait_for("conversation.item.input_audio_transcription.completed")
        assert transcript["item_id"] == committed["item_id"] and transcript["transcript"] == "hello there"
        assert client.of_type("input_audio_buffer.speech_started") == []  # no VAD in manual mode
        assert client.of_type("response.created") == []  # commit does not start a response
        await client.send({"type": "response.create"})
        done = await client.wait_for("response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "You said: hello there."


async def test_cancel_and_barge_in() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await client.send({"type": "response.cancel"})
        assert await error_code(client) == "response_cancel_not_active"
        await client.send({"type": "conversation.item.create", "item": text_item(LONG)})
        await client.send({"type": "response.create"})
        delta = await client.wait_for("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        done = await client.wait_for("response.done")
        assert done["response"]["id"] == delta["response_id"]
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        assert done["response"]["output"][0]["status"] == "incomplete"
        for etype in (
            "response.output_audio.done",
            "response.content_part.done",
            "response.output_item.done",
        ):
            assert client.of_type(etype), etype
        # barge-in: the caller speaks while the next long response is being produced
        client.events.clear()
        await client.send({"type": "response.create"})
        await client.wait_for("response.output_audio.delta")
        await client.append_audio(speech_pcm24k("hello there", 100, 900))
        done = await client.wait_for("response.done")
        types = [e["type"] for e in client.events]
        assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        nxt = await client.wait_for("response.done")  # the caller's turn is answered
        assert nxt["response"]["output"][0]["content"][0]["transcript"] == "You said: hello there."


async def test_truncate_and_items() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await client.send({"type": "conversation.item.create", "item": text_item("turn on the lights")})
        user = (await client.wait_for("conversation.item.done"))["item"]
        await client.send({"type": "response.create"})
        done = await client.wait_for("response.done")
        assistant = done["response"]["output"][0]
        audio_ms = len(client.audio_bytes()) // 48

        async def truncate(item_id: str, end_ms: int) -> None:
            await client.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": end_ms,
                }
            )

        await truncate("item_nope", 10)
        assert await error_code(client) == "item_truncate_invalid_item_id"
        await truncate(user["id"], 10)
        assert await error_code(client) == "unsupported_content_type"
        await truncate(assistant["id"], audio_ms + 500)
        assert await error_code(client) == "invalid_value"
        await truncate(assistant["id"], audio_ms // 2)
        truncated = await client.wait_for("conversation.item.truncated")
        assert truncated["audio_end_ms"] == audio_ms // 2
        await client.send({"type": "conversation.item.retrieve", "item_id": assistant["id"]})
        kept = (await client.wait_for("conversation.item.retrieved"))["item"]["content"][0]["transcript"]
        assert kept and "You said: turn on the lights.".startswith(kept) and len(kept) < 29
        # placement and deletion
        await client.send(
            {"type": "conversation.item.create", "previous_item_id": "root", "item": text_item("first")}
        )
        assert (await client.wait_for("conversation.item.added"))["previous_item_id"] is None
        await client.send(
            {
                "type": "conversation.item.create",
                "previous_item_id": user["id"],
                "item": text_item("ok", "assistant"),
            }
        )
        assert (await client.wait_for("conversation.item.added"))["previous_item_id"] == user["id"]
        await client.send(
            {"type": "conversation.item.create", "previous_item_id": "item_missing", "item": text_item("x")}
        )
        assert await error_code(client) == "invalid_value"
        await client.send({"type": "conversation.item.delete", "item_id": user["id"]})
        assert (await client.wait_for("conversation.item.deleted"))["item_id"] == user["id"]
        await client.send({"type": "conversation.item.delete", "item_id": user["id"]})
        assert await error_code(client) == "item_delete_invalid_item_id"
        tool = {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'}
        await client.send({"type": "conversation.item.create", "item": tool})
        assert (await client.wait_for("conversation.item.done"))["item"]["call_id"] == "call_1"


async def test_bad_input_keeps_socket_open() -> None:
    async with local_realtime(PHRASES) as url, RealtimeTestClient.connect(url) as client:
        await client.recv()
        await client.ws.send("{not json")
        assert await error_code(client) == "invalid_json"
        await client.ws.send(json.dumps({"type": "no.such.event"}))
        err = (await client.wait_for("error"))["error"]
        assert err["type"] == "invalid_request_error" and "no.such.event" in err["message"]
        await client.ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "!!!"}))
        assert await error_code(client) == "invalid_value"
        await client.ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "AAA="}))  # 2 bytes ok
        await client.ws.send(
            json.dumps({"type": "input_audio_buffer.append", "audio": "AA=="})
        )  # 1 byte: odd
        assert await error_code(client) == "invalid_value"
        await client.ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {"type": "message", "role": "assistant", "content": [{"type": "output_audio"}]},
                }
            )
        )
        assert await error_code(client) == "invalid_value"
        await client.update_session(instructions="alive")


async def test_auth_failures_and_success() -> None:
    async with local_realtime(PHRASES, api_key="sk-test-123") as url:
        for key in (None, "sk-wrong"):
            async with RealtimeTestClient.connect(url, api_key=key) as client:
                err = await client.recv()
                assert err["type"] == "error" and err["error"]["code"] == "invalid_api_key"
                with pytest.raises(websockets.ConnectionClosed):
                    await client.recv()
                assert client.ws.close_code == 3000
                assert client.ws.close_reason == "invalid_request_error.invalid_api_key"
        async with RealtimeTestClient.connect(url, api_key="sk-test-123") as client:
            assert (await client.recv())["type"] == "session.created"


async def test_session_expiry_and_wrong_path() -> None:
    async with local_realtime(PHRASES, max_session_s=0.5) as url:
        async with RealtimeTestClient.connect(url) as client:
            await client.recv()
            err = await client.wait_for("error", timeout_s=5)
            assert err["error"]["code"] == "session_expired"
            with pytest.raises(websockets.ConnectionClosed):
                await client.recv()
            assert client.ws.close_code == 1001
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(url.replace("/v1/realtime", "/v1/other")):
                pass


def test_event_builders_validate() -> None:
    from rtvoice.localrt import events as ev

    validate_server_event(ev.input_audio_buffer_timeout_triggered(0, 100, "item_1"))
    validate_server_event(ev.conversation_item_input_audio_transcription_delta("item_1", 0, "he"))
    validate_server_event(ev.conversation_item_input_audio_transcription_failed("item_1", 0, "x", "y"))
    validate_server_event(ev.response_function_call_arguments_delta("r", "i", 0, "c", "{"))
    validate_server_event(ev.response_function_call_arguments_done("r", "i", 0, "c", "f", "{}"))
