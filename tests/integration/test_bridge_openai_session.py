"""Provider-session lifetime through the bridge: steering, voice change with history replay, recycling,
reconnect after close 1001, and the beta protocol shape."""

from __future__ import annotations

import asyncio
import json

from rtvoice.bridge.providers import create_provider
from rtvoice.bridge.providers.base import RealtimeProvider
from rtvoice.core.settings import AgentSettings
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import openai_call, openai_settings, utterance
from tests.support.fake_openai import Scenario
from tests.support.gemini_calls import eventually

PACED = Scenario(reply_audio_ms=1200, chunk_ms=40, pace_s=0.02)


def steer(**fields: object) -> pb.ClientFrame:
    return pb.ClientFrame(steer=pb.SteerFrame(**fields))  # type: ignore[arg-type]


async def test_voice_change_after_first_reply_opens_new_session_with_replayed_history() -> None:
    async with openai_call() as oc:
        call = oc.call
        await call.send_audio(utterance())
        await call.wait_for("response_done")
        await call.send(steer(voice="cedar"))
        for _ in range(100):
            if len(oc.fake.connections) == 2 and oc.fake.connections[1].client_events(
                "conversation.item.create"
            ):
                break
            await asyncio.sleep(0.02)
        await call.send_audio(utterance("and tomorrow"))
        second = await call.wait_for("response_done", count=2)
        old, new = oc.fake.connections
    assert second.response_done.status == "completed"
    assert call.of_kind("error") == []  # no cannot_update_voice surfaced
    assert old.client_events("session.update")[1:] == []  # the old session was never asked to change voice
    first_update = new.client_events("session.update")[0]["session"]
    assert first_update["audio"]["output"]["voice"] == "cedar"
    replayed = [
        (e["item"]["role"], e["item"]["content"][0]["type"], e["item"]["content"][0]["text"])
        for e in new.client_events("conversation.item.create")
    ]
    assert replayed == [
        ("user", "input_text", "what is the weather today"),
        ("assistant", "output_text", "the weather is sunny"),
    ]
    assert len(new.client_events("input_audio_buffer.append")) > 0
    assert oc.fake.validation_errors == []
    assert call.of_kind("ready")[0].voice == "marin"


async def test_voice_change_before_any_audio_updates_in_place() -> None:
    async with openai_call() as oc:
        await oc.call.send(steer(voice="ash"))
        await eventually(lambda: len(oc.fake.connections[0].sent_events("session.updated")) >= 2)
        (conn,) = oc.fake.connections
    assert conn.client_events("session.update")[1]["session"] == {
        "type": "realtime",
        "audio": {"output": {"voice": "ash"}},
    }
    assert conn.sent_events("session.updated")[-1]["session"]["audio"]["output"]["voice"] == "ash"


async def test_steering_rules_on_ga() -> None:
    async with openai_call(PACED) as oc:
        call = oc.call
        await call.send_audio(utterance())
        await call.wait_for("audio", count=3)
        td = pb.TurnDetection(type="semantic_vad", eagerness="high")
        await call.send(steer(instructions="Speak like a pirate.", temperature=0.9, turn_detection=td))
        err = await call.wait_for("error")
        await call.wait_for("response_done")
        conn = oc.fake.connections[0]
        await eventually(lambda: len(conn.client_events("session.update")) >= 3)
    assert err.error.kind == pb.ERROR_KIND_UNSUPPORTED and err.error.code == "temperature_unsupported"
    assert not err.error.fatal
    updates = conn.client_events("session.update")[1:]
    assert updates[0]["session"]["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert updates[1]["session"] == {"type": "realtime", "instructions": "Speak like a pirate."}
    assert all("temperature" not in u["session"] for u in updates)
    log = conn.log
    received_updates = [i for i, e in enumerate(log) if e == ("received", "session.update")]
    done_at = log.index(("sent", "response.done"))
    assert received_updates[1] < done_at < received_updates[2]  # turn detection at once, instructions after
    assert oc.fake.validation_errors == []


async def test_close_1001_mid_call_reconnects_and_the_call_goes_on() -> None:
    scenario = Scenario(reply_audio_ms=1200, chunk_ms=40, pace_s=0.01, close_code_mid_response=1001)
    async with openai_call(scenario) as oc:
        call = oc.call
        await call.send_audio(utterance())
        err = await call.wait_for("error")
        interrupted = await call.wait_for("response_done")
        await call.send_audio(utterance("are you there"))
        done = await call.wait_for(
            lambda f: f.WhichOneof("frame") == "response_done" and f.response_done.status == "completed"
        )
        _first, second = oc.fake.connections
    assert err.error.code == "provider_reconnecting" and err.error.retryable and not err.error.fatal
    assert interrupted.response_done.status == "incomplete"
    assert done.response_done.status == "completed"
    assert call.of_kind("end") == []
    replayed = [e["item"]["content"][0]["text"] for e in second.client_events("conversation.item.create")]
    assert replayed == ["what is the weather today"]
    assert second.client_events("input_audio_buffer.append")
    assert oc.fake.validation_errors == []


async def test_provider_session_is_recycled_at_max_age_with_history() -> None:
    def short_lived(settings: AgentSettings, api_key: str | None, url: str | None) -> RealtimeProvider:
        settings.session.max_provider_session_s = 1  # below the validated minimum (30 s): a short test
        return create_provider(settings, api_key, url)

    async with openai_call(provider_factory=short_lived) as oc:
        await oc.call.send_audio(utterance())
        await oc.call.wait_for("response_done")
        for _ in range(150):
            if len(oc.fake.connections) >= 2 and oc.fake.connections[1].client_events(
                "conversation.item.create"
            ):
                break
            await asyncio.sleep(0.02)
        await oc.call.send_audio(utterance("thank you"))
        await oc.call.wait_for("response_done", count=2)
        second = oc.fake.connections[1]
    texts = [e["item"]["content"][0]["text"] for e in second.client_events("conversation.item.create")]
    assert texts[:2] == ["what is the weather today", "the weather is sunny"]
    assert oc.call.of_kind("error") == []


async def test_beta_shape() -> None:
    settings = openai_settings(apiShape="beta", temperature=0.7)
    async with openai_call(Scenario(shape="beta"), settings=settings) as oc:
        call = oc.call
        await call.send_audio(utterance())
        await call.wait_for("response_done")
        await call.send(steer(temperature=1.0))
        await call.send(steer(voice="verse"))  # after assistant audio: new session, replay with beta "text"
        for _ in range(100):
            if len(oc.fake.connections) == 2 and oc.fake.connections[1].client_events(
                "conversation.item.create"
            ):
                break
            await asyncio.sleep(0.02)
        first, second = oc.fake.connections
    assert first.headers["openai-beta"] == "realtime=v1"
    update = first.client_events("session.update")[0]["session"]
    assert "type" not in update and update["input_audio_format"] == "pcm16" and update["temperature"] == 0.7
    assert first.client_events("session.update")[1]["session"] == {"temperature": 1.0}
    assert call.of_kind("audio") and [t.text for t in call.of_kind("transcript") if t.final]
    assert call.of_kind("error") == []
    assert second.client_events("session.update")[0]["session"]["voice"] == "verse"
    contents = [e["item"]["content"][0]["type"] for e in second.client_events("conversation.item.create")]
    assert contents == ["input_text", "text"]
    assert oc.fake.validation_errors == []


async def test_steer_to_a_voice_the_provider_does_not_offer_is_a_typed_error_and_changes_nothing() -> None:
    async with openai_call() as oc:
        call = oc.call
        await call.send(steer(voice="Kore"))  # a Gemini voice: not an OpenAI one
        err = (await call.wait_for("error")).error
        await call.send_audio(utterance())
        done = (await call.wait_for("response_done")).response_done
        (conn,) = oc.fake.connections
    assert (err.kind, err.code, err.fatal) == (pb.ERROR_KIND_PROTOCOL, "invalid_voice", False)
    assert "marin" in err.message  # says which voices are offered
    assert done.status == "completed"
    assert [u["session"] for u in conn.client_events("session.update")[1:]] == []  # nothing sent for it
    assert oc.fake.validation_errors == []


async def test_when_the_bridge_ends_first_the_callers_closing_span_is_still_archived() -> None:
    """A caller side (the ingress) answers the bridge's EndFrame with its own session span and a
    half-close; the bridge reads on after its EndFrame, so that span is in the archive."""
    async with openai_call() as oc:
        call = oc.call
        await call.send_audio(utterance())
        await call.wait_for("response_done")
        (session,) = oc.bridge.server.servicer.sessions
        session.shutdown(None, pb.END_REASON_BRIDGE_SHUTDOWN)
        end = (await call.wait_for("end")).end
        closing = pb.Span(
            trace_id=oc.recorders[0].start.session.traceparent.split("-")[1],
            span_id="00f067aa0ba902b7",
            name="ingress.session",
            start_unix_ns=1,
            end_unix_ns=2,
            attributes={"end_reason": '"bridge_shutdown"'},
        )
        await call.send(pb.ClientFrame(span=closing))
        await call.half_close()
        await asyncio.wait_for(call.done.wait(), 5)
    assert end.reason == pb.END_REASON_BRIDGE_SHUTDOWN
    assert oc.manifest is not None and oc.manifest["end_reason"] == "bridge_shutdown"
    archived = [json.loads(line) for line in oc.archive_files["spans.json"].splitlines() if line]
    ingress = [s for s in archived if s["name"] == "ingress.session"]
    assert len(ingress) == 1 and ingress[0]["span_id"] == "00f067aa0ba902b7"
    assert ingress[0]["attributes"]["end_reason"] == "bridge_shutdown"
