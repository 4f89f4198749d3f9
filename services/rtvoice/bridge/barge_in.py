"""Barge-in state of a bridge session: the one place that knows, per agent item, what the provider
generated, what was sent to the caller, what the caller played, and what was cut.

Both directions consult it: the provider → caller path drops late audio, transcript deltas and tool calls of
what was cut; the caller → provider path asks :meth:`BargeIn.cut` for the :class:`Cut` to send the provider
(OpenAI ``conversation.item.truncate`` at the played position, see docs/providers.md; Gemini keeps the heard
share for history replay). The played position is the caller's ``PlaybackMark`` or, without one, the wall time
since the item's first audio was sent (the caller plays in real time), never more than was sent.

It is also the playback model of the session clock: the caller plays agent audio as it arrives, item
after item, so a chunk written at session time ``t`` starts playing at ``max(t, end of what was written
before)`` (:meth:`BargeIn.play_start_ms` of an item).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from rtvoice.core.audio import AudioFormat

_MAX_ITEMS = 64


@dataclass(frozen=True, slots=True)
class Cut:
    """What a barge-in cut: ``item_id`` the caller was hearing, ``played_ms`` of it heard (≤
    ``generated_ms``, the audio the provider produced for it); ``played_ms`` 0 = nothing heard."""

    item_id: str
    played_ms: int
    generated_ms: int

    @property
    def heard_ratio(self) -> float:
        return self.played_ms / self.generated_ms if self.generated_ms else 0.0


@dataclass(slots=True)
class _Item:
    generated_bytes: int = 0
    sent_bytes: int = 0
    first_sent_ns: int = 0
    marked_ms: int | None = None
    #: session time (ms) at which the item's first sample starts playing
    play_start_ms: float | None = None


class BargeIn:
    """Per item: provider audio in ``provider_fmt``, caller audio in ``caller_fmt`` (durations in ms).
    ``clock_t0_ns`` is ``time.monotonic_ns()`` at ``SessionStart`` (the session clock's 0)."""

    def __init__(self, caller_fmt: AudioFormat, provider_fmt: AudioFormat, clock_t0_ns: int) -> None:
        self.caller_fmt = caller_fmt
        self.provider_fmt = provider_fmt
        self._caller_bytes_per_ms = caller_fmt.bytes_per_ms
        self._t0 = clock_t0_ns
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._cut: OrderedDict[str, None] = OrderedDict()
        self.current_item: str | None = None
        #: the response running when the last barge-in happened, until its ``response_done``
        self.cut_response: str | None = None
        self._play_end_ms = 0.0

    def _item(self, item_id: str) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
            while len(self._items) > _MAX_ITEMS:
                self._items.popitem(last=False)
        return item

    def on_generated(self, item_id: str, nbytes: int) -> None:
        """``nbytes`` of ``item_id`` audio came from the provider (provider format)."""
        self._item(item_id).generated_bytes += nbytes

    def on_sent(self, item_id: str, nbytes: int) -> None:
        """``nbytes`` of ``item_id`` audio were written to the caller (caller format)."""
        now_ns = time.monotonic_ns()
        item = self._item(item_id)
        start_ms = max((now_ns - self._t0) / 1e6, self._play_end_ms)
        if not item.sent_bytes:
            item.first_sent_ns = now_ns
            item.play_start_ms = start_ms
        item.sent_bytes += nbytes
        self.current_item = item_id
        self._play_end_ms = start_ms + nbytes / self._caller_bytes_per_ms

    def now_ms(self) -> float:
        """Now on the session clock (ms since ``SessionStart``)."""
        return (time.monotonic_ns() - self._t0) / 1e6

    def play_start_ms(self, item_id: str) -> float | None:
        """Session time (ms) at which ``item_id``'s first sample starts playing (None: none sent yet)."""
        item = self._items.get(item_id)
        return None if item is None else item.play_start_ms

    def on_mark(self, item_id: str, played_ms: int) -> None:
        """The caller's ``PlaybackMark``: ``played_ms`` of ``item_id`` were heard."""
        item = self._items.get(item_id)
        if item is not None:
            item.marked_ms = played_ms

    def sent_ms(self, item_id: str) -> int:
        item = self._items.get(item_id)
        return 0 if item is None else int(self.caller_fmt.duration_ms(item.sent_bytes))

    def played_ms(self, item_id: str) -> int:
        """Reported (or estimated) played ms of ``item_id``, clamped to what was sent."""
        item = self._items.get(item_id)
        if item is None or not item.sent_bytes:
            return 0
        sent = int(self.caller_fmt.duration_ms(item.sent_bytes))
        if item.marked_ms is not None:
            return min(item.marked_ms, sent)
        elapsed = (time.monotonic_ns() - item.first_sent_ns) // 1_000_000
        return min(int(elapsed), sent)

    def audible(self) -> bool:
        """Whether the caller is probably still playing agent audio of the current item."""
        item_id = self.current_item
        if item_id is None or item_id in self._cut:
            return False
        return self.played_ms(item_id) < self.sent_ms(item_id)

    def is_cut(self, item_id: str) -> bool:
        """Audio (and transcript deltas) of ``item_id`` are dropped: a barge-in cut it."""
        return item_id in self._cut

    def cut(self, heard: str | None, others: set[str], response_id: str | None) -> Cut | None:
        """Barge-in: ``heard`` (the item the caller was playing, or None) and ``others`` (items with audio
        in flight) are cut, and so is ``response_id``'s remaining output. Returns the :class:`Cut` to
        tell the provider, or None when ``heard`` is None or was already cut."""
        fresh = heard is not None and heard not in self._cut
        cut = None
        if heard is not None and fresh:
            item = self._item(heard)
            generated = int(self.provider_fmt.duration_ms(item.generated_bytes))
            cut = Cut(heard, min(self.played_ms(heard), generated), generated)
        for item_id in {heard, *others} - {None}:
            self._cut[str(item_id)] = None
            while len(self._cut) > _MAX_ITEMS:
                self._cut.popitem(last=False)
        if self.current_item in self._cut:
            self.current_item = None
        if response_id:
            self.cut_response = response_id
        self._play_end_ms = 0.0  # the caller flushed its queue: what comes next plays at once
        return cut

    def response_done(self, response_id: str) -> None:
        if response_id == self.cut_response:
            self.cut_response = None
