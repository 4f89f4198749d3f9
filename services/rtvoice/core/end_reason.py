"""Session end reasons: the proto enum ``EndReason`` and its wire name.

The caller protocol's ``session.ended.reason``, the archive's ``end_reason`` and log lines use the wire
name: the enum value's name, lower-case, without the ``END_REASON_`` prefix
(``END_REASON_CALLER_HANGUP`` → ``"caller_hangup"``). This module is the only place that converts.
See docs/architecture.md, "End reasons".
"""

from __future__ import annotations

from typing import TypeAlias

from rtvoice.v1 import frames_pb2 as pb

EndReason: TypeAlias = pb.EndReason  # at run time the values are plain ints

_PREFIX = "END_REASON_"


def wire_name(reason: EndReason) -> str:
    """``"caller_hangup"`` for ``END_REASON_CALLER_HANGUP``; ``"unspecified"`` for 0 or an unknown value."""
    try:
        return pb.EndReason.Name(reason)[len(_PREFIX) :].lower()
    except ValueError:
        return "unspecified"


def from_wire_name(name: str) -> EndReason:
    """The enum value of a wire name; raises ``ValueError`` naming the valid ones when unknown."""
    key = _PREFIX + name.upper()
    if name and key in pb.EndReason.keys():
        return pb.EndReason.Value(key)
    raise ValueError(f"unknown end reason {name!r}; valid: {', '.join(all_wire_names())}")


def all_wire_names() -> list[str]:
    """Every wire name a service can send, in enum order (without ``unspecified``)."""
    return [wire_name(v) for v in pb.EndReason.values() if v != pb.END_REASON_UNSPECIFIED]


def end_frame(reason: EndReason, detail: str = "") -> pb.EndFrame:
    """An ``EndFrame`` carrying ``reason`` (never ``END_REASON_UNSPECIFIED``: that raises ``ValueError``)."""
    if reason == pb.END_REASON_UNSPECIFIED:
        raise ValueError("an EndFrame needs a real end reason")
    return pb.EndFrame(reason=reason, detail=detail)
