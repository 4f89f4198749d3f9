"""Wire conformance for Gemini Live tests: every message is checked against the ``google-genai`` SDK's own
pydantic types (``google.genai.types.LiveClientMessage`` / ``LiveServerMessage``, ``extra='forbid'``).

JSON text is validated with ``model_validate_json``, so base64 ``data`` fields are really decoded and
both camelCase (wire) and snake_case (SDK) keys are accepted, as the server accepts both.

One gap of the SDK types is bridged here: ``LiveClientSetup`` (google-genai 3.x) has no
``realtime_input_config`` field although the SDK's own converter (``_live_converters.py``,
``LiveConnectConfig.realtime_input_config`` → ``setup.realtimeInputConfig``) puts it on the wire; that
object is validated separately against ``types.RealtimeInputConfig``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.genai import types
from pydantic import ValidationError

_CAMEL = re.compile(r"_([a-z0-9])")
#: Free-form JSON objects inside messages: their keys belong to the user, not to the protocol.
_OPAQUE = {"args", "response", "parameters", "parametersJsonSchema", "output", "error", "properties"}


def validate_client_message(text: str) -> str | None:
    """``None`` when ``text`` is a valid ``LiveClientMessage``, else the validation error text."""
    try:
        obj = json.loads(text)
    except ValueError as err:
        return f"not JSON: {err}"
    if not isinstance(obj, dict) or len(obj) != 1:
        shown = list(obj) if isinstance(obj, dict) else obj
        return f"a client message has exactly one top-level key, got {shown!r}"
    setup = obj.get("setup")
    if isinstance(setup, dict):
        setup = dict(setup)
        for key in ("realtimeInputConfig", "realtime_input_config"):
            ric = setup.pop(key, None)
            if ric is not None:
                try:
                    types.RealtimeInputConfig.model_validate_json(json.dumps(ric))
                except ValidationError as err:
                    return f"setup.{key}: {err}"
        obj = {"setup": setup}
    try:
        types.LiveClientMessage.model_validate_json(json.dumps(obj))
    except ValidationError as err:
        return str(err)
    return None


def validate_server_message(text: str) -> str | None:
    """``None`` when ``text`` is a valid ``LiveServerMessage``, else the validation error text."""
    try:
        types.LiveServerMessage.model_validate_json(text)
    except ValidationError as err:
        return str(err)
    return None


def camelize(value: Any, *, _key: str = "") -> Any:
    """snake_case protocol keys → camelCase, recursively; user-owned objects (``args``, schemas …) as is."""
    if isinstance(value, list):
        return [camelize(v, _key=_key) for v in value]
    if not isinstance(value, dict) or _key in _OPAQUE:
        return value
    out: dict[str, Any] = {}
    for k, v in value.items():
        ck = _CAMEL.sub(lambda m: m.group(1).upper(), k)
        out[ck] = camelize(v, _key=ck)
    return out
