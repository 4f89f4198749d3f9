"""Options of the offline engine (``rtvoice local-realtime`` flags and :class:`LocalRealtimeServer` args)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtvoice.localrt.responder import ChatResponder, EchoResponder, Responder


@dataclass(frozen=True)
class EngineOptions:
    """Engine-wide settings.

    ``phrases``: expected utterances; when given, recognition uses a JSGF grammar of them (exact on clear
    speech) instead of the general language model. ``chat_url`` / ``chat_model`` / ``chat_api_key``: an
    OpenAI-compatible chat-completions endpoint that writes the replies (else the echo responder).
    ``voice``: default session voice. ``api_key``: when set, clients must send ``Authorization: Bearer``
    with it. ``max_session_s``: session length limit (``session_expired``). ``default_model``: the session
    model when the URL has no ``?model=``. ``chat_timeout_s``: per chat request.
    """

    phrases: tuple[str, ...] = ()
    chat_url: str | None = None
    chat_model: str = "gpt-4o-mini"
    chat_api_key: str | None = None
    chat_timeout_s: float = 20.0
    voice: str = "marin"
    api_key: str | None = None
    max_session_s: float = 3600.0
    default_model: str = "gpt-realtime"

    def make_responder(self) -> Responder:
        """The responder these options select (one per server; the chat one pools HTTP connections)."""
        if self.chat_url:
            return ChatResponder(self.chat_url, self.chat_model, self.chat_api_key, self.chat_timeout_s)
        return EchoResponder()


def read_phrases_file(path: str | Path) -> list[str]:
    """One phrase per line; blank lines and ``#`` comments skipped. Raises OSError if unreadable."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
