"""What each provider accepts: wire audio formats, voices, value ranges and the session-config paths the
agent settings own. One place for these facts; :mod:`rtvoice.core.rules` judges settings against them.

Providers (see docs/providers.md):

- ``openai``: OpenAI Realtime, two protocol shapes. GA (``session.type = "realtime"``) offers ten voices
  plus custom voice ids (``voice_…``) and refuses ``temperature``; the legacy beta shape (Azure, older
  deployments) offers eight voices and takes ``temperature`` in 0.6–1.2.
- ``gemini``: Gemini Live (BidiGenerateContent). Thirty prebuilt voices, ``temperature`` 0–2, no
  semantic VAD; PCM16 in at 16000 Hz, out at 24000 Hz.
- ``local``: the offline engine ``rtvoice local-realtime``. It speaks the OpenAI Realtime GA protocol;
  its voices are OpenAI voice names or espeak-ng voices (:mod:`rtvoice.localrt.voices`, imported on
  first use so that this module stays light).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rtvoice.core.audio import G711_ALAW, G711_MULAW, PCM16, AudioFormat


class VoiceSet(Protocol):
    """The voices one protocol accepts."""

    def offers(self, name: str) -> bool:
        """True when the provider accepts the voice ``name``."""
        ...

    def describe(self) -> str:
        """The accepted voices, for an error message."""
        ...


@dataclass(frozen=True, slots=True)
class FixedVoices:
    """A fixed list of voice names; ``custom_prefix`` also admits custom voice ids (``voice_…``)."""

    names: frozenset[str]
    custom_prefix: str = ""

    def offers(self, name: str) -> bool:
        return name in self.names or bool(self.custom_prefix and name.startswith(self.custom_prefix))

    def describe(self) -> str:
        listed = ", ".join(sorted(self.names))
        return f"one of: {listed}" + (
            f"; or a custom voice id {self.custom_prefix}…" if self.custom_prefix else ""
        )


class LocalEngineVoices:
    """The offline engine's voices: OpenAI voice names and the espeak-ng voices installed here."""

    def offers(self, name: str) -> bool:
        from rtvoice.localrt.voices import is_valid_voice

        return bool(is_valid_voice(name))

    def describe(self) -> str:
        from rtvoice.localrt.voices import list_voices

        names = sorted(str(v) for v in list_voices())
        shown = ", ".join(names[:24]) + (f", … ({len(names)} in all)" if len(names) > 24 else "")
        return f"one of: {shown}; `rtvoice local-realtime --list-voices` prints them all"


@dataclass(frozen=True, slots=True)
class WireFormat:
    """An audio format a provider accepts and the name its protocol gives it (``audio/pcmu`` …)."""

    audio: AudioFormat
    wire_name: str


@dataclass(frozen=True, slots=True)
class ProtocolProfile:
    """What one provider protocol (shape) accepts.

    ``temperature`` is the accepted (low, high) range, or ``None`` when the protocol refuses the field.
    ``input_formats`` / ``output_formats`` are the provider-side formats; the bridge converts the caller's.
    """

    voices: VoiceSet
    default_voice: str
    temperature: tuple[float, float] | None
    turn_detection: frozenset[str]
    input_formats: tuple[WireFormat, ...]
    output_formats: tuple[WireFormat, ...]


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """One provider: defaults, its protocol profiles by ``apiShape`` and the override paths.

    ``owned_override_paths``: dotted paths of the provider's session config that the bridge derives
    from the agent's own fields (voice, instructions, formats, turn detection, tools, …); an override
    there would fight the spec, so ``providerParamOverrides`` may not touch them.
    ``open_override_paths``: paths the bridge fills with a default that an override may replace
    (e.g. the transcription model). Every path the session builders write is in one of the two lists.
    """

    name: str
    default_model: str
    api_key_env: str
    profiles: Mapping[str, ProtocolProfile]
    owned_override_paths: tuple[str, ...]
    open_override_paths: tuple[str, ...] = field(default=())

    def profile(self, api_shape: str) -> ProtocolProfile:
        """The profile of ``api_shape`` (``ga`` / ``beta``); providers with one protocol ignore it."""
        return self.profiles.get(api_shape) or self.profiles["ga"]


_PCM24 = AudioFormat(PCM16, 24000)
_MULAW = AudioFormat(G711_MULAW, 8000)
_ALAW = AudioFormat(G711_ALAW, 8000)
_OPENAI_GA_FORMATS = (
    WireFormat(_PCM24, "audio/pcm"),
    WireFormat(_MULAW, "audio/pcmu"),
    WireFormat(_ALAW, "audio/pcma"),
)
_OPENAI_BETA_FORMATS = (
    WireFormat(_PCM24, "pcm16"),
    WireFormat(_MULAW, "g711_ulaw"),
    WireFormat(_ALAW, "g711_alaw"),
)
_OPENAI_BETA_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"})
_OPENAI_TURNS = frozenset({"server_vad", "semantic_vad", "none"})

OPENAI_GA = ProtocolProfile(
    voices=FixedVoices(_OPENAI_BETA_VOICES | {"marin", "cedar"}, custom_prefix="voice_"),
    default_voice="marin",
    temperature=None,
    turn_detection=_OPENAI_TURNS,
    input_formats=_OPENAI_GA_FORMATS,
    output_formats=_OPENAI_GA_FORMATS,
)
OPENAI_BETA = ProtocolProfile(
    voices=FixedVoices(_OPENAI_BETA_VOICES),
    default_voice="alloy",
    temperature=(0.6, 1.2),
    turn_detection=_OPENAI_TURNS,
    input_formats=_OPENAI_BETA_FORMATS,
    output_formats=_OPENAI_BETA_FORMATS,
)
_GEMINI_VOICES = frozenset({
    "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe", "Charon",
    "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore", "Laomedeia", "Leda", "Orus",
    "Puck", "Pulcherrima", "Rasalgethi", "Sadachbia", "Sadaltager", "Schedar", "Sulafat", "Umbriel",
    "Vindemiatrix", "Zephyr", "Zubenelgenubi",
})  # fmt: skip
GEMINI_LIVE = ProtocolProfile(
    voices=FixedVoices(_GEMINI_VOICES),
    default_voice="Puck",
    temperature=(0.0, 2.0),
    turn_detection=frozenset({"server_vad", "none"}),
    input_formats=(WireFormat(AudioFormat(PCM16, 16000), "audio/pcm;rate=16000"),),
    output_formats=(WireFormat(_PCM24, "audio/pcm;rate=24000"),),
)
LOCAL_ENGINE = ProtocolProfile(
    voices=LocalEngineVoices(),
    default_voice="en-us",
    temperature=None,  # the engine follows the GA protocol, which refuses temperature
    turn_detection=_OPENAI_TURNS,
    input_formats=_OPENAI_GA_FORMATS,
    output_formats=_OPENAI_GA_FORMATS,
)

# Paths of the OpenAI session object (both shapes) that the agent's own fields set.
_OPENAI_OWNED = (
    "type", "model", "instructions", "tools", "voice", "temperature", "modalities", "output_modalities",
    "turn_detection", "input_audio_format", "output_audio_format", "audio.input.format",
    "audio.input.turn_detection", "audio.output.format", "audio.output.voice",
)  # fmt: skip
_OPENAI_OPEN = ("audio.input.transcription", "input_audio_transcription", "tool_choice")
# Paths of the Gemini Live ``setup`` object that the agent's own fields (or the bridge's reconnects) set.
_GEMINI_OWNED = (
    "model", "systemInstruction", "tools", "sessionResumption", "historyConfig",
    "generationConfig.responseModalities", "generationConfig.speechConfig", "generationConfig.temperature",
    "realtimeInputConfig.automaticActivityDetection", "realtimeInputConfig.activityHandling",
)  # fmt: skip
_GEMINI_OPEN = ("inputAudioTranscription", "outputAudioTranscription", "contextWindowCompression")

PROVIDERS: Mapping[str, ProviderEntry] = {
    "openai": ProviderEntry(
        name="openai",
        default_model="gpt-realtime",
        api_key_env="OPENAI_API_KEY",
        profiles={"ga": OPENAI_GA, "beta": OPENAI_BETA},
        owned_override_paths=_OPENAI_OWNED,
        open_override_paths=_OPENAI_OPEN,
    ),
    "gemini": ProviderEntry(
        name="gemini",
        default_model="models/gemini-2.5-flash-native-audio-preview-12-2025",
        api_key_env="GEMINI_API_KEY",
        profiles={"ga": GEMINI_LIVE},
        owned_override_paths=_GEMINI_OWNED,
        open_override_paths=_GEMINI_OPEN,
    ),
    "local": ProviderEntry(
        name="local",
        default_model="rtvoice-local-1",
        api_key_env="",
        profiles={"ga": LOCAL_ENGINE},
        owned_override_paths=_OPENAI_OWNED,
        open_override_paths=_OPENAI_OPEN,
    ),
}


def provider(name: str) -> ProviderEntry:
    """The catalog entry of provider ``name``; raises ``KeyError`` for a provider not in the catalog."""
    return PROVIDERS[name]
