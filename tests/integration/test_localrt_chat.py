"""The chat-completions responder against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from tests.support.localrt import RealtimeTestClient, chat_completions_server, chat_reply, local_realtime

PHRASES = ["what is the weather today", "hello there"]


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    }


async def test_chat_answer_with_history_and_instructions() -> None:
    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, chat_reply(f"It is sunny. You sent {len(body['messages'])} messages.")

    async with chat_completions_server(answer) as (base, requests):
        async with local_realtime(
            PHRASES, chat_url=base, chat_model="tiny-llm", chat_api_key="sk-chat"
        ) as url:
            async with RealtimeTestClient.connect(url) as client:
                await client.recv()
                await client.update_session(instructions="You are a weather bot.")
                await client.send(user_text("what is the weather today"))
                await client.send({"type": "response.create"})
                done = await client.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    spoken = done["response"]["output"][0]["content"][0]["transcript"]
    assert spoken == "It is sunny. You sent 2 messages."
    (req,) = requests
    assert req["model"] == "tiny-llm"
    assert req["messages"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "what is the weather today"},
    ]
    assert req["_headers"]["Authorization"] == "Bearer sk-chat"


async def test_chat_failure_is_spoken_apology_and_error() -> None:
    async with chat_completions_server(lambda body: (500, {"error": {"message": "boom"}})) as (base, _):
        async with local_realtime(PHRASES, chat_url=base + "/chat/completions") as url:
            async with RealtimeTestClient.connect(url) as client:
                await client.recv()
                await client.send(user_text("hello there"))
                await client.send({"type": "response.create"})
                err = await client.wait_for("error")
                done = await client.wait_for("response.done")
    assert err["error"]["code"] == "responder_failed" and "500" in err["error"]["message"]
    assert done["response"]["status"] == "completed"
    assert done["response"]["output"][0]["content"][0]["transcript"].startswith("Sorry")
    assert len(client.audio_bytes()) > 0


async def test_cancel_and_barge_in_while_the_model_thinks() -> None:
    async with chat_completions_server(lambda body: (200, chat_reply("late answer")), delay_s=1.5) as (
        base,
        _,
    ):
        async with local_realtime(PHRASES, chat_url=base) as url, RealtimeTestClient.connect(url) as client:
            await client.recv()
            await client.send(user_text("hello there"))
            await client.send({"type": "response.create"})
            await client.wait_for("response.created")
            await client.send({"type": "response.cancel"})
            done = await client.wait_for("response.done")
            assert done["response"]["status_details"]["reason"] == "client_cancelled"
            assert done["response"]["output"] == []
