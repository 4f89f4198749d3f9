"""Configuration of ``rtvoice local-realtime``: one model giving its flags, its ``RTVOICE_LOCALRT_*``
variables and the checks (see :mod:`rtvoice.core.config`); :meth:`EngineSettings.engine_options` turns
it into the engine's :class:`~rtvoice.localrt.options.EngineOptions`. The API keys of the HTTP stages
come from the environment only (never a flag, so they stay out of process listings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, SecretStr

from rtvoice.core.config import Opt
from rtvoice.core.server_settings import MetricsSettings, ServerSettings
from rtvoice.localrt.options import (
    LLM_KINDS,
    STT_KINDS,
    TTS_KINDS,
    VAD_KINDS,
    EngineOptions,
    read_phrases_file,
)

API_KEY_ENV = "RTVOICE_LOCALRT_API_KEY"
CHAT_API_KEY_ENV = "RTVOICE_CHAT_API_KEY"
STT_API_KEY_ENV = "RTVOICE_STT_API_KEY"
TTS_API_KEY_ENV = "RTVOICE_TTS_API_KEY"


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _env_only(name: str) -> Opt:
    return Opt(cli=False, own_env=False, env=(name,))


class EngineSettings(ServerSettings, MetricsSettings):
    """``rtvoice local-realtime``."""

    service: ClassVar[str] = "localrt"

    phrase: Annotated[list[str], Opt(metavar="TEXT")] = Field(
        default_factory=list,
        description="an expected utterance (repeatable); recognition then uses a grammar of the phrases",
    )
    phrases_file: Annotated[Path | None, Opt(metavar="FILE")] = Field(
        None, description="expected utterances, one per line (# comments)"
    )
    stt: Annotated[str, Opt(choices=STT_KINDS)] = Field(
        "auto",
        description="recognition stage: whisper (tiny.en), pocketsphinx (exact on --phrase grammars), "
        "auto (pocketsphinx with phrases, else whisper), http (--stt-url)",
    )
    vad: Annotated[str, Opt(choices=VAD_KINDS)] = Field(
        "silero", description="turn detector: silero, or webrtc (lighter)"
    )
    stt_url: Annotated[str | None, Opt(metavar="URL")] = Field(
        None, description=f"OpenAI-compatible /v1/audio/transcriptions endpoint (key: ${STT_API_KEY_ENV})"
    )
    stt_model: Annotated[str, Opt(metavar="MODEL")] = Field(
        "", description="model sent to --stt-url (empty = whisper-1)"
    )
    llm: Annotated[str | None, Opt(choices=LLM_KINDS)] = Field(
        None,
        description="answer stage: echo, bundled (offline SmolLM2-135M), http (--llm-url); "
        "default: http when --llm-url is given, else echo",
    )
    chat_url: Annotated[str | None, Opt(flag="--llm-url", aliases=("--chat-url",), metavar="URL")] = Field(
        None,
        description="OpenAI-compatible chat-completions endpoint, streamed, with the session tools "
        f"(base …/v1 or full …/chat/completions; key: ${CHAT_API_KEY_ENV})",
    )
    chat_model: Annotated[str, Opt(flag="--llm-model", aliases=("--chat-model",), metavar="MODEL")] = Field(
        "gpt-4o-mini", description="model for --llm-url"
    )
    chat_timeout_s: float = Field(20.0, gt=0, description="timeout of one HTTP stage request, s")
    tts: Annotated[str, Opt(choices=TTS_KINDS)] = Field("local", description="speech stage (http: --tts-url)")
    tts_url: Annotated[str | None, Opt(metavar="URL")] = Field(
        None, description=f"OpenAI-compatible /v1/audio/speech endpoint, streamed (key: ${TTS_API_KEY_ENV})"
    )
    tts_model: Annotated[str, Opt(metavar="MODEL")] = Field(
        "", description="model sent to --tts-url (empty = tts-1)"
    )
    voice: str = Field(
        "marin",
        min_length=1,
        description="default voice: OpenAI name, espeak-ng voice (en-us, en-gb-x-rp+f2) or "
        "piper:en_US-joe-medium",
    )
    api_key: Annotated[SecretStr | None, Opt(metavar="KEY")] = Field(
        None, description="require 'Authorization: Bearer KEY' (unset = no auth)"
    )
    max_session_s: float = Field(3600.0, gt=0, description="maximum session length, s")
    chat_api_key: Annotated[SecretStr | None, _env_only(CHAT_API_KEY_ENV)] = None
    stt_api_key: Annotated[SecretStr | None, _env_only(STT_API_KEY_ENV)] = None
    tts_api_key: Annotated[SecretStr | None, _env_only(TTS_API_KEY_ENV)] = None

    def engine_options(self) -> EngineOptions:
        """The engine's options. Raises ``OSError`` when ``--phrases-file`` cannot be read and
        ``OptionsError`` (a ``ValueError``) for a stage without its URL."""
        phrases = list(self.phrase)
        if self.phrases_file is not None:
            phrases += read_phrases_file(self.phrases_file)
        return EngineOptions(
            phrases=tuple(phrases),
            chat_url=self.chat_url,
            chat_model=self.chat_model,
            chat_api_key=_secret(self.chat_api_key),
            chat_timeout_s=self.chat_timeout_s,
            voice=self.voice,
            api_key=_secret(self.api_key) or None,
            max_session_s=self.max_session_s,
            stt=self.stt,
            stt_url=self.stt_url,
            stt_model=self.stt_model,
            stt_api_key=_secret(self.stt_api_key),
            llm=self.llm,
            tts=self.tts,
            tts_url=self.tts_url,
            tts_model=self.tts_model,
            tts_api_key=_secret(self.tts_api_key),
            vad=self.vad,
        )
