"""Playback tracking on the caller side of the bridge, for barge-in.

The bridge knows how much agent audio it sent to the caller per item; the caller reports how much it
actually played (``PlaybackMark``). On barge-in the provider is told to forget everything after the
played position (OpenAI ``conversation.item.truncate``). Without any mark for an item, the played
position is estimated as the wall time since its first audio was sent (the caller plays in real time),
never more than was sent.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from rtvoice.core.audio import AudioFormat

_MAX_ITEMS = 64


@dataclass(slots=True)
class _ItemPlayback:
    first_sent_ns: int
    sent_bytes: int = 0
    marked_ms: int | None = None


class PlaybackTracker:
    """Agent audio per item in the caller's output format ``fmt`` (durations in ms)."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self._items: OrderedDict[str, _ItemPlayback] = OrderedDict()
        self._cleared: OrderedDict[str, None] = OrderedDict()
        self.current_item: str | None = None

    def on_sent(self, item_id: str, nbytes: int) -> None:
        """``nbytes`` of ``item_id`` audio went to the caller."""
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _ItemPlayback(time.monotonic_ns())
            while len(self._items) > _MAX_ITEMS:
                self._items.popitem(last=False)
        item.sent_bytes += nbytes
        self.current_item = item_id

    def on_mark(self, item_id: str, played_ms: int) -> None:
        """The caller's ``PlaybackMark``: ``played_ms`` of ``item_id`` were heard."""
        item = self._items.get(item_id)
        if item is not None:
            item.marked_ms = played_ms

    def sent_ms(self, item_id: str) -> int:
        item = self._items.get(item_id)
        return 0 if item is None else int(self.fmt.duration_ms(item.sent_bytes))

    def played_ms(self, item_id: str) -> int:
        """Reported (or estimated) played ms of ``item_id``, clamped to what was sent."""
        item = self._items.get(item_id)
        if item is None:
            return 0
        sent = int(self.fmt.duration_ms(item.sent_bytes))
        if item.marked_ms is not None:
            return min(item.marked_ms, sent)
        elapsed = (time.monotonic_ns() - item.first_sent_ns) // 1_000_000
        return min(int(elapsed), sent)

    def audible(self) -> bool:
        """Whether the caller is probably still playing agent audio of the current item."""
        item_id = self.current_item
        if item_id is None or item_id in self._cleared:
            return False
        return self.played_ms(item_id) < self.sent_ms(item_id)

    def clear(self, item_id: str) -> None:
        """Barge-in on ``item_id``: its further audio is dropped (late deltas)."""
        self._cleared[item_id] = None
        while len(self._cleared) > _MAX_ITEMS:
            self._cleared.popitem(last=False)
        if self.current_item == item_id:
            self.current_item = None

    def is_cleared(self, item_id: str) -> bool:
        return item_id in self._cleared
