"""Conversation history kept by the bridge for replay into a new provider session.

A provider session has to be replaced when it reaches its maximum age, when the connection drops, or
(OpenAI) when the voice changes after the assistant has spoken. The new session gets the conversation
back as text items, in order (assistant *audio* items cannot be created, see docs/providers.md).
Assistant items cut by a barge-in keep only the share of their transcript the caller heard.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_ITEMS = 400


@dataclass(slots=True)
class HistoryItem:
    """One message: ``role`` is ``user`` or ``assistant``; ``heard_ratio`` < 1 after a truncate."""

    role: str
    text: str = ""
    heard_ratio: float = 1.0

    def replay_text(self) -> str:
        if self.heard_ratio >= 1.0:
            return self.text
        cut = int(len(self.text) * max(0.0, self.heard_ratio))
        return self.text[:cut].rstrip()


class ConversationHistory:
    """Ordered items by provider item id; bounded to the last :data:`MAX_ITEMS` items."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, HistoryItem] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item_id: str, role: str) -> None:
        """Note an item in conversation order (``conversation.item.added``); idempotent."""
        if item_id not in self._items and role in ("user", "assistant"):
            self._items[item_id] = HistoryItem(role)
            while len(self._items) > MAX_ITEMS:
                self._items.popitem(last=False)

    def set_text(self, item_id: str, role: str, text: str) -> None:
        """The final text of an item (transcript or typed text); adds the item when unseen."""
        self.add(item_id, role)
        item = self._items.get(item_id)
        if item is not None:
            item.text = text

    def truncate(self, item_id: str, heard_ratio: float) -> None:
        item = self._items.get(item_id)
        if item is not None:
            item.heard_ratio = min(item.heard_ratio, heard_ratio)

    def remove(self, item_id: str) -> None:
        self._items.pop(item_id, None)

    def replace_with(self, other: ConversationHistory) -> None:
        """Take over ``other``'s items (the re-created items of a new provider session)."""
        self._items = other._items

    def replay(self) -> list[tuple[str, str]]:
        """``(role, text)`` pairs to re-create, oldest first, empty texts left out."""
        out = []
        for item in self._items.values():
            text = item.replay_text()
            if text:
                out.append((item.role, text))
        return out
