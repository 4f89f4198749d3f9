"""The Gemini Live ``setup`` message built from agent settings (docs/providers.md, "Gemini Live").

``build_setup(settings)`` returns the first client message of a BidiGenerateContent connection,
camelCase as on the wire::

    {"setup": {"model": "models/…", "generationConfig": {"responseModalities": ["AUDIO"], …},
               "systemInstruction": {"parts": [{"text": …}]}, "tools": [{"functionDeclarations": […]}],
               "realtimeInputConfig": {…}, "inputAudioTranscription": {}, "outputAudioTranscription": {},
               "sessionResumption": {"handle": …}, "contextWindowCompression": {"slidingWindow": {}}}}

``providerParamOverrides`` are deep-merged into the object under ``setup`` last, so any field can be
overridden (e.g. ``{"generationConfig": {"topP": 0.9}}``); a reconnect applies them again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rtvoice.core.settings import AgentSettings, TurnDetection, deep_merge

DEFAULT_URL = (
    "wss://generativelanguage.googleapis.com/ws/"
    "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
)
_WS_PATH = urlsplit(DEFAULT_URL).path

#: Gemini's OpenAPI-subset schema keeps these JSON-Schema keywords (camelCase on the wire).
_SCHEMA_KEYS = (
    "description",
    "enum",
    "format",
    "required",
    "title",
    "nullable",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "pattern",
    "default",
    "example",
    "propertyOrdering",
)
#: JSON-Schema features the OpenAPI subset cannot express: such schemas go as ``parametersJsonSchema``.
_JSON_SCHEMA_ONLY = {"$ref", "$defs", "definitions", "oneOf", "allOf", "not", "if", "then", "else"}


def model_path(model: str) -> str:
    """The wire model name: ``models/<id>`` (adds the prefix the API requires when missing)."""
    return model if model.startswith(("models/", "projects/", "tunedModels/")) else f"models/{model}"


def is_gemini3(model: str) -> bool:
    """Gemini 3.x Live models refuse mid-session ``clientContent`` (close 1007; see docs/providers.md)."""
    return "gemini-3" in model


def websocket_url(base_url: str | None) -> str:
    """The BidiGenerateContent URL: ``base_url`` as given when it has a path, else with the standard path.

    ``http(s)://`` is turned into ``ws(s)://``; ``None`` gives :data:`DEFAULT_URL`.
    """
    if not base_url:
        return DEFAULT_URL
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else _WS_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _schema_uses_json_schema_only(schema: Any) -> bool:
    if isinstance(schema, dict):
        if _JSON_SCHEMA_ONLY & schema.keys():
            return True
        return any(_schema_uses_json_schema_only(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_schema_uses_json_schema_only(v) for v in schema)
    return False


def to_gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema (as in ``ToolSpec.parameters``) in Gemini's OpenAPI subset: uppercase ``type``.

    ``{"type": ["string", "null"]}`` becomes ``{"type": "STRING", "nullable": true}``; ``anyOf``,
    ``properties`` and ``items`` are converted recursively; keywords the subset lacks are dropped.
    """
    out: dict[str, Any] = {}
    typ = schema.get("type")
    if isinstance(typ, list):
        non_null = [t for t in typ if t != "null"]
        if len(non_null) < len(typ):
            out["nullable"] = True
        typ = non_null[0] if len(non_null) == 1 else None
    if isinstance(typ, str):
        out["type"] = typ.upper()
    for key in _SCHEMA_KEYS:
        if key in schema:
            out[key] = schema[key]
    if "enum" in out:
        out["enum"] = [str(v) for v in out["enum"]]
        out.setdefault("type", "STRING")
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: to_gemini_schema(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = to_gemini_schema(schema["items"])
    if isinstance(schema.get("anyOf"), list):
        out["anyOf"] = [to_gemini_schema(s) for s in schema["anyOf"] if isinstance(s, dict)]
    return out


def function_declarations(settings: AgentSettings) -> list[dict[str, Any]]:
    """``tools[].functionDeclarations`` entries of the agent's tools.

    Schemas the OpenAPI subset can express go as ``parameters``; others (``$ref``, ``oneOf`` …) go
    verbatim as ``parametersJsonSchema``.
    """
    decls: list[dict[str, Any]] = []
    for tool in settings.tools:
        decl: dict[str, Any] = {"name": tool.name, "description": tool.description}
        if _schema_uses_json_schema_only(tool.parameters):
            decl["parametersJsonSchema"] = tool.parameters
        elif tool.parameters.get("properties"):
            decl["parameters"] = to_gemini_schema(tool.parameters)
        decls.append(decl)
    return decls


def realtime_input_config(turn: TurnDetection) -> dict[str, Any]:
    """``realtimeInputConfig`` from the agent's turn detection.

    ``server_vad``: automatic activity detection with ``prefixPaddingMs`` and ``silenceDurationMs``
    copied, start sensitivity LOW when ``threshold`` > 0.5 (harder to trigger) else HIGH.
    ``semantic_vad``: automatic, end sensitivity from ``eagerness`` (high → HIGH, low → LOW).
    ``none``: detection disabled; the client sends ``activityStart``/``activityEnd``.
    ``interruptResponse: false`` gives ``activityHandling: NO_INTERRUPTION``.
    """
    aad: dict[str, Any]
    if turn.type == "none":
        aad = {"disabled": True}
    elif turn.type == "semantic_vad":
        aad = {"disabled": False}
        if turn.eagerness in ("high", "low"):
            aad["endOfSpeechSensitivity"] = f"END_SENSITIVITY_{turn.eagerness.upper()}"
    else:
        aad = {
            "disabled": False,
            "startOfSpeechSensitivity": "START_SENSITIVITY_LOW"
            if turn.threshold > 0.5
            else "START_SENSITIVITY_HIGH",
            "prefixPaddingMs": turn.prefix_padding_ms,
            "silenceDurationMs": turn.silence_duration_ms,
        }
    return {
        "automaticActivityDetection": aad,
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS" if turn.interrupt_response else "NO_INTERRUPTION",
    }


def build_setup(
    settings: AgentSettings,
    *,
    resumption_handle: str | None = None,
    initial_history: bool = False,
) -> dict[str, Any]:
    """The ``{"setup": {...}}`` message for ``settings`` (see module docstring).

    ``resumption_handle`` resumes a session (the newest ``newHandle`` with ``resumable: true``);
    ``initial_history`` announces history replay in ``clientContent`` on Gemini 3.x models.
    """
    generation: dict[str, Any] = {
        "responseModalities": ["AUDIO"],
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": settings.effective_voice}}},
    }
    if settings.temperature is not None:
        generation["temperature"] = settings.temperature
    setup: dict[str, Any] = {
        "model": model_path(settings.effective_model),
        "generationConfig": generation,
        "realtimeInputConfig": realtime_input_config(settings.turn_detection),
        "sessionResumption": {"handle": resumption_handle} if resumption_handle else {},
        "contextWindowCompression": {"slidingWindow": {}},
    }
    if settings.instructions:
        setup["systemInstruction"] = {"parts": [{"text": settings.instructions}]}
    decls = function_declarations(settings)
    if decls:
        setup["tools"] = [{"functionDeclarations": decls}]
    if settings.modalities == "audio_text":
        setup["inputAudioTranscription"] = {}
        setup["outputAudioTranscription"] = {}
    if initial_history and is_gemini3(settings.effective_model):
        setup["historyConfig"] = {"initialHistoryInClientContent": True}
    if settings.provider_param_overrides:
        setup = deep_merge(setup, settings.provider_param_overrides)
    return {"setup": setup}
