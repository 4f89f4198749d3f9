"""Options of the offline engine (``rtvoice local-realtime`` flags and :class:`LocalRealtimeServer` args)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtvoice.localrt.chat import ChatResponder
from rtvoice.localrt.responder import EchoResponder, Responder
from rtvoice.localrt.speech import LocalSpeech, RemoteSpeech, Speech

STT_KINDS = ("auto", "whisper", "pocketsphinx", "http")  # auto: pocketsphinx with phrases, else whisper
VAD_KINDS = ("silero", "webrtc")
LLM_KINDS = ("echo", "bundled", "http")
TTS_KINDS = ("local", "http")


class OptionsError(ValueError):
    """Engine options that do not fit together (e.g. ``llm="http"`` without ``chat_url``)."""


@dataclass(frozen=True)
class EngineOptions:
    """Engine-wide settings.

    ``phrases``: expected utterances; when given, recognition uses a JSGF grammar of them (exact on clear
    speech) instead of the general language model. ``chat_url`` / ``chat_model`` / ``chat_api_key``: an
    OpenAI-compatible chat-completions endpoint that writes the replies (else the echo responder).
    ``voice``: default session voice. ``api_key``: when set, clients must send ``Authorization: Bearer``
    with it. ``max_session_s``: session length limit (``session_expired``). ``default_model``: the session
    model when the URL has no ``?model=``. ``chat_timeout_s``: per chat request.

    The cascade, stage by stage: ``stt`` (:data:`STT_KINDS`; ``http`` uses ``stt_url`` / ``stt_model`` /
    ``stt_api_key``, an OpenAI-compatible ``/v1/audio/transcriptions``), ``llm`` (:data:`LLM_KINDS`;
    None = ``http`` when ``chat_url`` is set, else ``echo``), ``tts`` (:data:`TTS_KINDS`; ``http`` uses
    ``tts_url`` / ``tts_model`` / ``tts_api_key``, an OpenAI-compatible ``/v1/audio/speech``).
    ``stt`` ``auto`` (default) is pocketsphinx with a JSGF grammar when ``phrases`` are given (exact on
    them), else Whisper tiny.en; ``whisper`` with phrases uses them as a decoder prompt. ``vad``:
    turn detector, :data:`VAD_KINDS` (``silero`` default, ``webrtc`` lighter).
    Raises :class:`OptionsError` for a kind that is unknown or misses its URL.
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
    stt: str = "auto"
    stt_url: str | None = None
    stt_model: str = ""
    stt_api_key: str | None = None
    llm: str | None = None
    tts: str = "local"
    tts_url: str | None = None
    tts_model: str = ""
    tts_api_key: str | None = None
    vad: str = "silero"

    def __post_init__(self) -> None:
        if self.vad not in VAD_KINDS:
            raise OptionsError(f"vad must be one of {', '.join(VAD_KINDS)} (got {self.vad!r})")
        for stage, kind, kinds, url in (
            ("stt", self.stt, STT_KINDS, self.stt_url),
            ("llm", self.llm_kind, LLM_KINDS, self.chat_url),
            ("tts", self.tts, TTS_KINDS, self.tts_url),
        ):
            if kind not in kinds:
                raise OptionsError(f"{stage} must be one of {', '.join(kinds)} (got {kind!r})")
            if kind == "http" and not url:
                raise OptionsError(f"{stage} http needs its URL")

    @property
    def llm_kind(self) -> str:
        """The answer stage in effect: ``llm``, or ``http`` / ``echo`` by whether ``chat_url`` is set."""
        return self.llm or ("http" if self.chat_url else "echo")

    def make_responder(self) -> Responder:
        """The responder these options select (one per server; the chat one pools HTTP connections)."""
        if self.llm_kind == "http":
            assert self.chat_url is not None
            return ChatResponder(self.chat_url, self.chat_model, self.chat_api_key, self.chat_timeout_s)
        if self.llm_kind == "bundled":
            from rtvoice.localrt.llm import BundledResponder

            return BundledResponder()
        return EchoResponder()

    def make_speech(self) -> Speech:
        """The speech stage these options select (one per server)."""
        if self.tts == "http":
            assert self.tts_url is not None
            return RemoteSpeech(self.tts_url, self.tts_model, self.tts_api_key, self.chat_timeout_s)
        return LocalSpeech()


def read_phrases_file(path: str | Path) -> list[str]:
    """One phrase per line; blank lines and ``#`` comments skipped. Raises OSError if unreadable."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
