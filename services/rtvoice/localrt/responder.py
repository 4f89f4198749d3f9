"""What the engine says back: an echo of the transcript, or the answer of a chat-completions model.

:class:`EchoResponder` (default) answers ``"You said: <transcript>."`` (or a short apology when nothing was
understood). :class:`ChatResponder` asks any OpenAI-compatible ``POST /chat/completions`` endpoint (a
self-hosted LLM, for instance) with the session ``instructions`` as system message and the conversation
history; failures raise :class:`ResponderError`, which the session turns into a spoken apology plus an
``error`` event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)

NOT_UNDERSTOOD = "Sorry, I did not catch that."
CHAT_FAILED = "Sorry, I cannot answer right now."


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: ``role`` user | assistant | system, plain ``content`` text."""

    role: str
    content: str


class ResponderError(RuntimeError):
    """The chat endpoint failed (unreachable, timeout, HTTP error, malformed answer); message says which."""


class Responder(Protocol):
    """Produces the assistant's reply text for the conversation so far (last message = the turn to answer)."""

    async def reply(self, history: list[Message], instructions: str) -> str: ...

    async def aclose(self) -> None: ...


class EchoResponder:
    """Repeats the last user message: ``"You said: what is the weather today."``."""

    async def reply(self, history: list[Message], instructions: str) -> str:
        last = next((m for m in reversed(history) if m.role == "user"), None)
        text = last.content.strip().rstrip(".!?") if last else ""
        return f"You said: {text}." if text else NOT_UNDERSTOOD

    async def aclose(self) -> None:
        return None


def chat_completions_url(url: str) -> str:
    """Accept a base URL (``http://h/v1``) or a full ``…/chat/completions`` URL; return the full URL."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


class ChatResponder:
    """Asks an OpenAI-compatible chat-completions endpoint (httpx, async).

    ``url``: base (``…/v1``) or full ``…/chat/completions``; ``model``: sent as ``model``; ``api_key``: sent
    as ``Authorization: Bearer``; ``timeout_s``: whole-request timeout. Raises :class:`ResponderError`.
    """

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout_s: float = 20.0) -> None:
        self.url = chat_completions_url(url)
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers)

    async def reply(self, history: list[Message], instructions: str) -> str:
        messages: list[dict[str, str]] = []
        if instructions:
            messages.append({"role": "system", "content": instructions})
        messages.extend({"role": m.role, "content": m.content} for m in history if m.content)
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        try:
            resp = await self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ResponderError(
                f"chat endpoint {self.url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if resp.status_code != 200:
            raise ResponderError(
                f"chat endpoint {self.url} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ResponderError(f"chat endpoint {self.url} sent no choices[0].message.content") from exc
        if not isinstance(content, str) or not content.strip():
            raise ResponderError(f"chat endpoint {self.url} sent an empty answer")
        return content.strip()

    async def aclose(self) -> None:
        await self._client.aclose()
