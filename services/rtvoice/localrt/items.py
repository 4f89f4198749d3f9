"""Conversation items and response objects of the GA protocol, and the ordered conversation of a session.

Item shapes follow ``openai.types.realtime.ConversationItem`` (``object: "realtime.item"``); assistant
content is ``output_audio {transcript}`` or ``output_text {text}``. :class:`Conversation` keeps the items in
order with ``previous_item_id`` placement (``"root"`` = first, an id = after it, omitted = append) and the
milliseconds of assistant audio generated per item (for ``conversation.item.truncate`` checks).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from rtvoice.localrt.config import RequestError

JsonObj = dict[str, Any]


def user_audio_item(item_id: str, transcript: str | None = None) -> JsonObj:
    """A user message holding committed input audio (audio bytes are never echoed back)."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant_item(item_id: str, status: str, content: list[JsonObj]) -> JsonObj:
    """An assistant message (``status`` in_progress | completed | incomplete)."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JsonObj:
    """A function call the model made (``arguments``: JSON text; ``status`` in_progress | completed)."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def estimate_text_tokens(text: str) -> int:
    """Rough token count of ``text`` (~4 characters per token, as OpenAI's rule of thumb)."""
    return math.ceil(len(text) / 4)


def estimate_audio_tokens(ms: float, tokens_per_s: float = 10.0) -> int:
    """Rough audio token count for ``ms`` milliseconds of audio."""
    return math.ceil(ms / 1000.0 * tokens_per_s)


def usage(input_text: int, input_audio: int, output_text: int, output_audio: int) -> JsonObj:
    """``response.usage`` with token details (engine estimates: it has no tokenizer)."""
    return {
        "total_tokens": input_text + input_audio + output_text + output_audio,
        "input_tokens": input_text + input_audio,
        "output_tokens": output_text + output_audio,
        "input_token_details": {
            "text_tokens": input_text,
            "audio_tokens": input_audio,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
    }


def response_object(
    response_id: str,
    status: str,
    *,
    output: list[JsonObj] | None = None,
    conversation_id: str | None,
    output_modalities: list[str],
    audio_output: JsonObj | None = None,
    status_details: JsonObj | None = None,
    usage_: JsonObj | None = None,
    metadata: JsonObj | None = None,
    max_output_tokens: int | str = "inf",
) -> JsonObj:
    """A ``realtime.response`` object for ``response.created`` / ``response.done``."""
    return {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "output": output or [],
        "conversation_id": conversation_id,
        "output_modalities": output_modalities,
        "audio": {"output": audio_output} if audio_output else None,
        "max_output_tokens": max_output_tokens,
        "metadata": metadata,
        "usage": usage_,
    }


def item_text(item: JsonObj) -> str:
    """The text of a message item (text parts and audio transcripts, joined), or of a tool output."""
    if item.get("type") == "function_call_output":
        return str(item.get("output", ""))
    if item.get("type") == "function_call":
        return f"{item.get('name', '')}({item.get('arguments', '')})"
    parts = []
    for part in item.get("content") or []:
        text = part.get("text") if part.get("text") is not None else part.get("transcript")
        if text:
            parts.append(str(text))
    return " ".join(parts)


@dataclass
class Conversation:
    """The ordered items of one session's default conversation."""

    id: str
    items: list[JsonObj] = field(default_factory=list)
    audio_ms: dict[str, float] = field(default_factory=dict)
    confidence: dict[str, float | None] = field(default_factory=dict)
    """Recognizer confidence (0..1, None = unknown) of each user audio item's transcript."""

    def get(self, item_id: str) -> JsonObj | None:
        return next((it for it in self.items if it.get("id") == item_id), None)

    def last_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None

    def add(self, item: JsonObj, previous_item_id: str | None = None) -> str | None:
        """Insert ``item`` (must carry an ``id``); returns the id of the item now before it (or None).

        ``previous_item_id``: None appends, ``"root"`` inserts first, an id inserts after that item.
        Raises :class:`RequestError` ``invalid_value`` for an unknown ``previous_item_id``.
        """
        if previous_item_id is None:
            prev = self.last_id()
            self.items.append(item)
            return prev
        if previous_item_id == "root":
            self.items.insert(0, item)
            return None
        for index, existing in enumerate(self.items):
            if existing.get("id") == previous_item_id:
                self.items.insert(index + 1, item)
                return previous_item_id
        raise RequestError(
            "invalid_value",
            f"Invalid 'previous_item_id': no item with id '{previous_item_id}'.",
            "previous_item_id",
        )

    def previous_of(self, item_id: str) -> str | None:
        for index, existing in enumerate(self.items):
            if existing.get("id") == item_id:
                return self.items[index - 1]["id"] if index else None
        return None

    def delete(self, item_id: str) -> None:
        """Remove an item; :class:`RequestError` ``item_delete_invalid_item_id`` if it does not exist."""
        item = self.get(item_id)
        if item is None:
            raise RequestError(
                "item_delete_invalid_item_id", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        self.items.remove(item)
        self.audio_ms.pop(item_id, None)
        self.confidence.pop(item_id, None)

    def snapshot(self, item_id: str) -> JsonObj:
        """A deep copy of an item (for events), raising ``item_retrieve_invalid_item_id`` when missing."""
        item = self.get(item_id)
        if item is None:
            raise RequestError(
                "item_retrieve_invalid_item_id", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        return copy.deepcopy(item)

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Cut assistant audio at ``audio_end_ms`` and the stored transcript with it (proportionally).

        Raises :class:`RequestError`: unknown item (``item_truncate_invalid_item_id``), not assistant
        audio (``unsupported_content_type``), ``audio_end_ms`` < 0 or beyond the audio (``invalid_value``).
        """
        item = self.get(item_id)
        if item is None:
            raise RequestError(
                "item_truncate_invalid_item_id", f"Item with item_id '{item_id}' not found.", "item_id"
            )
        content = item.get("content") or []
        is_audio = (
            item.get("role") == "assistant"
            and 0 <= content_index < len(content)
            and content[content_index].get("type") == "output_audio"
            and item_id in self.audio_ms
        )
        if not is_audio:
            raise RequestError(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                "content_index",
            )
        total_ms = self.audio_ms[item_id]
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0 or audio_end_ms > math.ceil(total_ms):
            raise RequestError(
                "invalid_value",
                f"Audio content of {total_ms:.0f}ms is shorter than requested audio_end_ms {audio_end_ms}ms.",
                "audio_end_ms",
            )
        part = content[content_index]
        transcript = str(part.get("transcript") or "")
        keep = transcript[: round(len(transcript) * audio_end_ms / total_ms)] if total_ms > 0 else ""
        # cut at a word boundary: a word the caller only half heard is not remembered
        if keep and len(keep) < len(transcript) and not transcript[len(keep)].isspace():
            keep = keep.rsplit(" ", 1)[0] if " " in keep else ""
        part["transcript"] = keep.strip()
        self.audio_ms[item_id] = float(audio_end_ms)


_USER_PARTS = {"input_text", "input_audio", "input_image"}
_ASSISTANT_PARTS = {"output_text", "text"}


def _bad(message: str, param: str) -> RequestError:
    return RequestError("invalid_value", message, param)


def normalize_client_item(raw: Any, new_item_id: str) -> JsonObj:
    """Validate the ``item`` of a ``conversation.item.create`` and return the stored GA form.

    Accepts messages (user ``input_text``/``input_audio``/``input_image``; assistant ``output_text`` or beta
    ``text``, stored as ``output_text``; system ``input_text``), ``function_call`` and
    ``function_call_output``. Assistant audio cannot be created (replay it as text). Raises
    :class:`RequestError` naming the offending parameter.
    """
    if not isinstance(raw, dict):
        raise RequestError("invalid_type", "'item' must be an object.", "item")
    kind = raw.get("type")
    item_id = raw.get("id") or new_item_id
    if not isinstance(item_id, str) or len(item_id) > 64:
        raise _bad("'item.id' must be a string of at most 64 characters.", "item.id")
    base = {"id": item_id, "object": "realtime.item", "type": kind, "status": "completed"}
    if kind == "function_call_output":
        if not isinstance(raw.get("call_id"), str) or not isinstance(raw.get("output"), str):
            raise _bad("function_call_output needs string 'call_id' and 'output'.", "item.output")
        return {**base, "call_id": raw["call_id"], "output": raw["output"]}
    if kind == "function_call":
        if not all(isinstance(raw.get(k), str) for k in ("call_id", "name", "arguments")):
            raise _bad("function_call needs string 'call_id', 'name' and 'arguments'.", "item.arguments")
        return {**base, "call_id": raw["call_id"], "name": raw["name"], "arguments": raw["arguments"]}
    if kind != "message":
        raise _bad(
            f"Invalid 'item.type' {kind!r}: message, function_call or function_call_output.", "item.type"
        )
    role = raw.get("role")
    allowed = {"user": _USER_PARTS, "assistant": _ASSISTANT_PARTS, "system": {"input_text"}}.get(str(role))
    if allowed is None:
        raise _bad("'item.role' must be user, assistant or system.", "item.role")
    content = raw.get("content")
    if not isinstance(content, list) or not content:
        raise _bad("'item.content' must be a non-empty list.", "item.content")
    parts: list[JsonObj] = []
    for i, part in enumerate(content):
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype not in allowed:
            choices = ", ".join(sorted(allowed))
            raise _bad(
                f"Invalid 'item.content[{i}].type' {ptype!r} for role {role}: use {choices}.",
                f"item.content[{i}].type",
            )
        assert isinstance(part, dict)
        if ptype in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise _bad(f"'item.content[{i}].text' must be a string.", f"item.content[{i}].text")
            parts.append(
                {"type": "output_text" if role == "assistant" else "input_text", "text": part["text"]}
            )
        elif ptype == "input_audio":
            parts.append(
                {"type": "input_audio", "audio": part.get("audio"), "transcript": part.get("transcript")}
            )
        else:
            parts.append(
                {"type": "input_image", "image_url": part.get("image_url"), "detail": part.get("detail")}
            )
    return {**base, "role": role, "content": parts}
