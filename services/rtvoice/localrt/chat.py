"""The answer stage as a client of any OpenAI-compatible ``POST /chat/completions`` endpoint (httpx).

Request: ``{"model", "messages", "stream": true, "tools"?}`` — the session ``instructions`` as the
system message, the conversation as user/assistant messages, function calls as assistant
``tool_calls`` and their outputs as ``tool`` messages; the session's Realtime function tools become
chat ``{"type": "function", "function": {...}}`` tools. The answer is read as server-sent events
(``data: {chunk}`` lines, ``data: [DONE]``): ``delta.content`` pieces are yielded as they arrive,
``delta.tool_calls`` fragments are joined per ``index`` and yielded as
:class:`~rtvoice.localrt.responder.ToolCall` when the stream ends. A server that ignores ``stream``
and answers one JSON ``chat.completion`` is read too. Failures raise
:class:`~rtvoice.localrt.responder.ResponderError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from rtvoice.localrt.responder import JsonObj, Message, ReplyPart, ResponderError, ToolCall

log = logging.getLogger(__name__)


def chat_completions_url(url: str) -> str:
    """Accept a base URL (``http://h/v1``) or a full ``…/chat/completions`` URL; return the full URL."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def chat_messages(history: list[Message], instructions: str) -> list[JsonObj]:
    """``history`` in chat-completions form (system first when ``instructions`` is not empty)."""
    out: list[JsonObj] = [{"role": "system", "content": instructions}] if instructions else []
    for m in history:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.tool_calls:
            calls = [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": calls})
        elif m.content:
            out.append({"role": m.role, "content": m.content})
    return out


def chat_tools(tools: list[JsonObj]) -> list[JsonObj]:
    """Realtime session tools (``{"type": "function", "name", ...}``) as chat-completions tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("parameters") or {"type": "object", "properties": {}},
            },
        }
        for t in tools
        if isinstance(t, dict) and t.get("type", "function") == "function" and isinstance(t.get("name"), str)
    ]


class _ToolCallParts:
    """Joins streamed ``delta.tool_calls`` fragments (by ``index``) into whole calls."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, fragments: Any) -> None:
        for frag in fragments if isinstance(fragments, list) else []:
            call = self._calls.setdefault(
                int(frag.get("index", len(self._calls))), {"id": "", "name": "", "args": ""}
            )
            call["id"] = frag.get("id") or call["id"]
            fn = frag.get("function") or {}
            call["name"] += fn.get("name") or ""
            call["args"] += fn.get("arguments") or ""

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(c["id"] or f"call_{i}", c["name"], c["args"] or "{}")
            for i, c in sorted(self._calls.items())
            if c["name"]
        ]


class ChatResponder:
    """Streams answers from a chat-completions endpoint.

    ``url``: base (``…/v1``) or full ``…/chat/completions``; ``model`` sent as ``model``; ``api_key`` as
    ``Authorization: Bearer``; ``timeout_s``: connect and per-read timeout. Raises ``ResponderError``.
    """

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout_s: float = 20.0) -> None:
        self.url = chat_completions_url(url)
        self.model = model or "default"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers)

    async def stream(
        self, history: list[Message], instructions: str, tools: list[JsonObj]
    ) -> AsyncIterator[ReplyPart]:
        body: JsonObj = {
            "model": self.model,
            "messages": chat_messages(history, instructions),
            "stream": True,
        }
        if chat_tools(tools):
            body["tools"] = chat_tools(tools)
        wrote = False
        try:
            async with self._client.stream("POST", self.url, json=body) as resp:
                if resp.status_code != 200:
                    text = (await resp.aread()).decode("utf-8", "replace")
                    raise ResponderError(
                        f"chat endpoint {self.url} answered HTTP {resp.status_code}: {text[:200]}"
                    )
                if resp.headers.get("content-type", "").startswith("text/event-stream"):
                    async for part in self._events(resp):
                        wrote = wrote or bool(part)
                        yield part
                else:
                    for part in self._whole(await resp.aread()):
                        wrote = True
                        yield part
        except httpx.HTTPError as exc:
            raise ResponderError(
                f"chat endpoint {self.url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if not wrote:
            raise ResponderError(f"chat endpoint {self.url} sent an empty answer")

    async def _events(self, resp: httpx.Response) -> AsyncIterator[ReplyPart]:
        calls = _ToolCallParts()
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
                choices = chunk.get("choices") or [{}]
                delta = choices[0].get("delta") or {}
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                raise ResponderError(
                    f"chat endpoint {self.url} sent a malformed event: {data[:200]}"
                ) from exc
            if isinstance(delta.get("content"), str) and delta["content"]:
                yield delta["content"]
            calls.add(delta.get("tool_calls"))
        for call in calls.calls():
            yield call

    def _whole(self, raw: bytes) -> list[ReplyPart]:
        try:
            message = json.loads(raw)["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ResponderError(f"chat endpoint {self.url} sent no choices[0].message") from exc
        parts: list[ReplyPart] = []
        if isinstance(message.get("content"), str) and message["content"].strip():
            parts.append(message["content"].strip())
        for i, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") or {}
            if fn.get("name"):
                parts.append(ToolCall(call.get("id") or f"call_{i}", fn["name"], fn.get("arguments") or "{}"))
        return parts

    async def aclose(self) -> None:
        await self._client.aclose()
