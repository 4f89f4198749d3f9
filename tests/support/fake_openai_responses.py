"""Responses of the fake OpenAI Realtime server: spoken replies (espeak-ng audio), function calls,
cancellation (barge-in, ``response.cancel``) with the late-delta race, and a mid-response close.

Mixed into ``tests.support.fake_openai_session.FakeSession``; event order as in docs/providers.md
("OpenAI Realtime").
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np

from rtvoice.core import g711
from rtvoice.core.audio import resample_once
from rtvoice.localrt import events as ev
from rtvoice.localrt import items as it
from tests.support.speech import synthesize_pcm16


def reply_audio(text: str, duration_ms: int, fmt: str) -> bytes:
    """Spoken ``text`` (espeak-ng) at 24 kHz PCM16 or µ-law 8 kHz, padded/cut to ``duration_ms``."""
    rate = 8000 if fmt == "audio/pcmu" else 24000
    pcm = np.frombuffer(synthesize_pcm16(text, 16000), dtype="<i2")
    samples = resample_once(pcm, 16000, rate)
    want = rate * duration_ms // 1000
    samples = np.concatenate([samples, np.zeros(max(0, want - samples.size), dtype=np.int16)])[:want]
    return g711.pcm16_to_ulaw(samples) if rate == 8000 else samples.astype("<i2").tobytes()


class ResponderMixin:
    """Needs of the host: ``send``, ``sc`` (Scenario), ``shape``, ``items``, ``item_audio_ms``, ``conn``,
    ``ws``, ``out_format``, ``response_task``, ``cancel_reason``, ``assistant_audio``, ``tool_called``."""

    send: Any
    sc: Any
    shape: str
    items: list[dict[str, Any]]
    fake: Any
    item_audio_ms: dict[str, float]
    conn: Any
    ws: Any
    item_added: Any
    response_task: asyncio.Task[None] | None
    cancel_reason: str
    assistant_audio: bool
    tool_called: bool

    @property
    def out_format(self) -> str:
        raise NotImplementedError

    def start_response(self) -> None:
        self.response_task = asyncio.create_task(self.respond())

    async def respond(self) -> None:
        try:
            await self._respond()
        finally:
            if self.response_task is asyncio.current_task():
                self.response_task = None

    async def _respond(self) -> None:
        rid = ev.new_id("resp")
        conv = "conv_fake"
        modal = ["audio"]
        await self.send(
            ev.response_created(
                it.response_object(rid, "in_progress", conversation_id=conv, output_modalities=modal)
            )
        )
        await self.send(ev.rate_limits_updated())
        self.fake.responses_started += 1
        if self.fake.responses_started <= self.sc.silent_responses:
            await asyncio.Event().wait()  # scripted: a provider that never finishes this response
        last = self.items[-1] if self.items else {}
        if self.sc.tool_call and not self.tool_called and last.get("type") != "function_call_output":
            self.tool_called = True
            await self.function_call(rid)
            await self.send(
                ev.response_done(
                    it.response_object(rid, "completed", conversation_id=conv, output_modalities=modal)
                )
            )
            self.response_task = None
            return
        text = self.sc.reply_text
        if last.get("type") == "function_call_output":
            text = "the tool says " + str(last.get("output", ""))[:40]
        await self.speak(rid, conv, text)

    async def function_call(self, rid: str) -> None:
        assert self.sc.tool_call is not None
        name, args = self.sc.tool_call
        item_id, call_id = ev.new_id("item"), ev.new_id("call")[:30]
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        await self.send(ev.response_output_item_added(rid, 0, item))
        await self.send(ev.response_function_call_arguments_delta(rid, item_id, 0, call_id, args))
        await self.send(ev.response_function_call_arguments_done(rid, item_id, 0, call_id, name, args))
        done = {**item, "status": "completed", "arguments": args}
        self.items.append(done)
        await self.send(ev.response_output_item_done(rid, 0, done))

    async def speak(self, rid: str, conv: str, text: str) -> None:
        item_id = ev.new_id("item")
        part_type = "audio"
        prev = self.items[-1]["id"] if self.items else None
        await self.send(ev.response_output_item_added(rid, 0, it.assistant_item(item_id, "in_progress", [])))
        await self.item_added(it.assistant_item(item_id, "in_progress", []), prev)
        await self.send(
            ev.response_content_part_added(rid, item_id, 0, 0, {"type": part_type, "transcript": ""})
        )
        audio = reply_audio(text, self.sc.reply_audio_ms, self.out_format)
        bpm = 8 if self.out_format == "audio/pcmu" else 48
        step = self.sc.chunk_ms * bpm
        words = text.split()
        sent_ms = 0.0
        status, reason = "completed", None
        closed_mid = False
        try:
            for n, off in enumerate(range(0, len(audio), step)):
                chunk = audio[off : off + step]
                if n < len(words):
                    await self.send(
                        ev.response_output_audio_transcript_delta(rid, item_id, 0, 0, words[n] + " ")
                    )
                await self.send(
                    ev.response_output_audio_delta(rid, item_id, 0, 0, base64.b64encode(chunk).decode())
                )
                self.assistant_audio = True
                sent_ms += len(chunk) / bpm
                self.item_audio_ms[item_id] = sent_ms
                code = self.sc.close_code_mid_response
                if code is not None and self.conn.index == 0 and sent_ms >= self.sc.close_after_ms:
                    closed_mid = True
                    await self.ws.close(code, "going away")
                    return
                if self.sc.pace_s:
                    await asyncio.sleep(self.sc.pace_s)
                else:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if closed_mid:
                raise
            status, reason = "cancelled", self.cancel_reason or "client_cancelled"
            if self.sc.late_delta_after_cancel and reason == "client_cancelled":
                late = base64.b64encode(audio[:step]).decode()
                await self.send(ev.response_output_audio_delta(rid, item_id, 0, 0, late))
        heard = " ".join(words) if status == "completed" else ""
        await self.send(ev.response_output_audio_done(rid, item_id, 0, 0))
        await self.send(ev.response_output_audio_transcript_done(rid, item_id, 0, 0, heard or text))
        part = {"type": part_type, "transcript": heard or text}
        await self.send(ev.response_content_part_done(rid, item_id, 0, 0, part))
        item_status = "completed" if status == "completed" else "incomplete"
        final = it.assistant_item(item_id, item_status, [{"type": "output_audio", "transcript": text}])
        if self.shape == "beta":
            final["content"] = [{"type": "audio", "transcript": text}]
        self.items.append(final)
        await self.send(ev.response_output_item_done(rid, 0, final))
        if self.shape == "ga":
            await self.send(ev.conversation_item_done(final, prev))
        details = {"type": status, "reason": reason} if reason else None
        usage = it.usage(10, 20, 5, int(sent_ms / 100))
        resp = it.response_object(
            rid,
            status,
            conversation_id=conv,
            output_modalities=["audio"],
            output=[final],
            status_details=details,
            usage_=usage,
        )
        self.response_task = None
        self.cancel_reason = ""
        await self.send(ev.response_done(resp))
