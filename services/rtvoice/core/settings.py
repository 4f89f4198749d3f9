"""Agent settings: the ``spec`` of a ``VoiceAgent`` (design.md section 3).

One model serves ``rtvoice up -f agent.yaml``, the bridge and the operator: fields are snake_case in
Python and camelCase in YAML/JSON (``turnDetection.silenceDurationMs``). The CRD's openAPIV3Schema is
generated from these models (``rtvoice crd``), so the cluster, the operator and the local command all
validate against the same rules. Secrets never live here: API keys are referenced by Secret name or by
environment variable name only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

API_GROUP = "rtvoice.io"
API_VERSION = "v1alpha1"
KIND = "VoiceAgent"

Provider = Literal["openai", "gemini", "local"]
CallerAudioFormat = Literal["pcm16_16k", "pcm16_24k", "g711_mulaw"]

DEFAULT_MODELS: dict[str, str] = {
    "openai": "gpt-realtime",
    "gemini": "models/gemini-2.5-flash-native-audio-preview-12-2025",
    "local": "rtvoice-local-1",
}
DEFAULT_VOICES: dict[str, str] = {"openai": "marin", "gemini": "Puck", "local": "en-us"}
DEFAULT_API_KEY_ENV: dict[str, str] = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY", "local": ""}


class SettingsError(ValueError):
    """Agent settings that cannot be used; the message names each bad field and what it expects."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", protected_namespaces=()
    )


class TurnDetection(_Model):
    """How the end of the caller's turn is found. ``none`` = manual turns (the caller's EndOfTurn)."""

    type: Literal["server_vad", "semantic_vad", "none"] = "server_vad"
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="server_vad: activation threshold 0-1")
    prefix_padding_ms: int = Field(300, ge=0, le=5000, description="server_vad: audio kept before speech")
    silence_duration_ms: int = Field(500, ge=0, le=10000, description="server_vad: silence ending a turn")
    eagerness: Literal["low", "medium", "high", "auto"] = Field("auto", description="semantic_vad only")
    create_response: bool = True
    interrupt_response: bool = True


class AudioSettings(_Model):
    """Caller-side audio formats; the bridge converts to and from what the provider accepts."""

    input: CallerAudioFormat = "pcm16_16k"
    output: CallerAudioFormat = "pcm16_16k"


class ToolSpec(_Model):
    """A function the model may call; the bridge POSTs the arguments as JSON to ``endpoint``."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str = Field("", max_length=1024)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments object",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    endpoint: str = Field(pattern=r"^https?://", description="HTTP(S) URL receiving a POST of the arguments")
    timeout_ms: int = Field(5000, ge=100, le=120000)
    max_result_chars: int = Field(4000, ge=64, le=100000, description="longer results are truncated")


class SecretRef(_Model):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field("apiKey", min_length=1)


class Credentials(_Model):
    """Where the provider API key comes from: a Secret (cluster) or an environment variable (local)."""

    secret_ref: SecretRef | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Recording(_Model):
    enabled: bool = True


class SessionLimits(_Model):
    """Provider-connection lifetime and reconnect policy."""

    max_provider_session_s: int = Field(
        3300, ge=30, le=86400, description="recycle the provider connection before this age"
    )
    reconnect_attempts: int = Field(5, ge=0, le=20)
    reconnect_buffer_ms: int = Field(
        10000, ge=0, le=120000, description="caller audio kept while reconnecting"
    )


class LocalEngine(_Model):
    """Options of the offline engine (``provider: local``)."""

    phrases: list[str] = Field(default_factory=list, description="constrain recognition to these phrases")
    chat_completions_url: str | None = Field(None, pattern=r"^https?://")
    chat_model: str = "default"

    def cli_args(self) -> list[str]:
        """These options as ``rtvoice local-realtime`` arguments (used by ``rtvoice up`` and the operator)."""
        args: list[str] = []
        for phrase in self.phrases:
            args += ["--phrase", phrase]
        if self.chat_completions_url:
            args += ["--chat-url", self.chat_completions_url, "--chat-model", self.chat_model]
        return args


class AgentSettings(_Model):
    """``VoiceAgent.spec``: everything that defines an agent. See design.md section 3."""

    provider: Provider = "local"
    model: str = Field("", description="provider model id; empty = the provider's default")
    voice: str = Field("", description="provider voice; empty = the provider's default")
    instructions: str = Field("You are a helpful voice assistant. Answer briefly.", max_length=100000)
    modalities: Literal["audio", "audio_text"] = "audio_text"
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    turn_detection: TurnDetection = Field(default_factory=TurnDetection)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    provider_param_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="merged (deep) into the provider's first session config",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    tools: list[ToolSpec] = Field(default_factory=list, max_length=64)
    credentials: Credentials = Field(default_factory=Credentials)
    recording: Recording = Field(default_factory=Recording)
    replicas: int = Field(1, ge=0, le=100)
    base_url: str | None = Field(None, pattern=r"^(wss?|https?)://", description="provider endpoint override")
    api_shape: Literal["ga", "beta"] = Field("ga", description="OpenAI protocol shape; beta for Azure/legacy")
    session: SessionLimits = Field(default_factory=SessionLimits)
    local_engine: LocalEngine = Field(default_factory=LocalEngine)

    @property
    def effective_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.provider]

    @property
    def effective_voice(self) -> str:
        return self.voice or DEFAULT_VOICES[self.provider]

    def to_public_dict(self) -> dict[str, Any]:
        """camelCase dict for manifests and ConfigMaps; holds no secrets (only references to them)."""
        return self.model_dump(by_alias=True, mode="json")

    def with_overrides(self, overrides: dict[str, Any]) -> AgentSettings:
        """A copy with ``overrides`` (camelCase, partial) deep-merged in and validated again."""
        return parse_settings(deep_merge(self.to_public_dict(), overrides))


class AgentDocument(_Model):
    """A loaded agent file: where it came from and its settings."""

    name: str
    namespace: str = "default"
    spec: AgentSettings


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``extra`` merged into ``base``; nested dicts merge, everything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_errors(err: ValidationError, where: str) -> str:
    lines = [f"invalid agent settings in {where}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"  spec.{loc}: {e['msg']}")
    return "\n".join(lines)


def parse_settings(spec: dict[str, Any] | None, where: str = "spec") -> AgentSettings:
    """Validate a camelCase ``spec`` dict. Raises :class:`SettingsError` listing each bad field."""
    try:
        return AgentSettings.model_validate(spec or {})
    except ValidationError as err:
        raise SettingsError(_format_errors(err, where)) from None


def parse_agent_document(doc: Any, where: str = "agent file") -> AgentDocument:
    """Accept a ``VoiceAgent`` object (apiVersion/kind/metadata/spec) or a bare spec mapping."""
    if not isinstance(doc, dict):
        raise SettingsError(f"{where}: expected a VoiceAgent mapping, got {type(doc).__name__}")
    if "spec" in doc or "kind" in doc:
        kind = doc.get("kind", KIND)
        if kind != KIND:
            raise SettingsError(f"{where}: kind is {kind!r}, expected {KIND!r}")
        api = doc.get("apiVersion", f"{API_GROUP}/{API_VERSION}")
        if api != f"{API_GROUP}/{API_VERSION}":
            raise SettingsError(f"{where}: apiVersion is {api!r}, expected '{API_GROUP}/{API_VERSION}'")
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
    else:
        meta, spec = {}, doc
    return AgentDocument(
        name=str(meta.get("name", "default")),
        namespace=str(meta.get("namespace", "default")),
        spec=parse_settings(spec, where),
    )


def load_agent_file(path: str | Path) -> AgentDocument:
    """Load a VoiceAgent YAML (or JSON) file. Raises :class:`SettingsError` with the file name."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise SettingsError(f"cannot read agent file {p}: {err.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SettingsError(f"{p} is not valid YAML: {err}") from None
    return parse_agent_document(doc, str(p))


def dumps_settings(settings: AgentSettings) -> str:
    """Compact JSON of the public (secret-free) settings."""
    return json.dumps(settings.to_public_dict(), separators=(",", ":"), sort_keys=True)
