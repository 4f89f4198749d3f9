"""The provider catalog against the code that speaks each protocol: the override paths it says the spec
owns are exactly what the session builders write from the spec, its formats are what the bridge sends,
its OpenAI voices are the OpenAI SDK's."""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

import pytest
from openai.types.beta.realtime import session_update_event as beta_session
from openai.types.realtime import realtime_audio_config_output as ga_output

from rtvoice.bridge.providers.gemini import codec as gemini_codec
from rtvoice.bridge.providers.gemini import setup as gemini_setup
from rtvoice.bridge.providers.openai import protocol as proto
from rtvoice.bridge.providers.openai.ws import realtime_url
from rtvoice.core.catalog import PROVIDERS, FixedVoices, ProviderEntry
from rtvoice.core.settings import (
    DEFAULT_VOICES,
    CallerAudioFormat,
    Provider,
    SettingsError,
    parse_settings,
    validate_settings,
)
from tests.unit.test_bridge_protocol import first_update  # checked against the OpenAI SDK's event types

TOOLS = [
    {"name": "lookup", "endpoint": "http://127.0.0.1:1/x", "parameters": {"type": "object", "properties": {
        "q": {"type": "string"}}}},
]  # fmt: skip


def _leaves(node: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf (scalar, list, ``None`` or empty object) of a nested mapping."""
    if isinstance(node, dict) and node:
        out: set[str] = set()
        for key, value in node.items():
            out |= _leaves(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip(".")}


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + ".") for r in roots)


def _openai_written(provider: str) -> set[str]:
    """Every path the OpenAI builders write, over both shapes, the turn detection kinds and formats."""
    paths: set[str] = set()
    for shape in ("ga", "beta"):
        for td in ("server_vad", "semantic_vad", "none"):
            for fmt in ("pcm16_16k", "g711_mulaw"):
                spec: dict[str, Any] = {
                    "provider": provider,
                    "tools": TOOLS,
                    "turnDetection": {"type": td},
                    "audio": {"input": fmt, "output": fmt},
                }
                if shape == "beta":
                    spec["temperature"] = 0.8
                paths |= _leaves(first_update(parse_settings(spec), shape))
    return paths


def _gemini_written() -> set[str]:
    paths: set[str] = set()
    for td in ("server_vad", "none"):
        spec = {
            "provider": "gemini",
            "model": "gemini-3-live-preview",
            "tools": TOOLS,
            "temperature": 0.7,
            "turnDetection": {"type": td},
        }
        setup = gemini_setup.build_setup(parse_settings(spec), resumption_handle="h", initial_history=True)
        paths |= _leaves(setup["setup"])
    return paths


def _check_classified(entry: ProviderEntry, written: set[str], outside_session: set[str]) -> None:
    unclassified = sorted(
        p for p in written if not _under(p, entry.owned_override_paths + entry.open_override_paths)
    )
    assert unclassified == [], f"{entry.name}: builder writes paths the catalog does not classify"
    never_written = sorted(
        owned
        for owned in entry.owned_override_paths
        if owned not in outside_session and not any(_under(w, (owned,)) for w in written)
    )
    assert never_written == [], f"{entry.name}: catalog owns paths no builder writes"


@pytest.mark.parametrize("provider", ["openai", "local"])
def test_openai_owned_paths_are_what_the_builders_write(provider: str) -> None:
    # The model travels in the URL (?model=), not in the session object: the spec owns it all the same.
    url = realtime_url(None, parse_settings({"provider": provider}).effective_model)
    assert parse_qs(urlsplit(url).query)["model"] == [PROVIDERS[provider].default_model]
    _check_classified(PROVIDERS[provider], _openai_written(provider), outside_session={"model"})


def test_gemini_owned_paths_are_what_the_setup_builder_writes() -> None:
    _check_classified(PROVIDERS["gemini"], _gemini_written(), outside_session=set())


@pytest.mark.parametrize(
    ("provider", "override"),
    [
        ("openai", {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}),
        ("openai", {"tool_choice": "required"}),
        ("gemini", {"contextWindowCompression": {"triggerTokens": 1000}}),
    ],
)
def test_open_paths_may_be_overridden_and_reach_the_wire(provider: str, override: dict[str, Any]) -> None:
    spec = {"provider": provider, "providerParamOverrides": override, "tools": TOOLS}
    settings = validate_settings(spec)
    wire = (
        first_update(settings, "ga") if provider == "openai" else gemini_setup.build_setup(settings)["setup"]
    )
    assert _leaves(override) <= _leaves(wire)
    for path in _leaves(override):
        node: Any = wire
        want: Any = override
        for part in path.split("."):
            node, want = node[part], want[part]
        assert node == want


@pytest.mark.parametrize("provider", ["openai", "gemini", "local"])
def test_every_owned_path_is_refused_as_an_override(provider: str) -> None:
    for owned in PROVIDERS[provider].owned_override_paths:
        override: dict[str, Any] = {}
        node = override
        *parents, leaf = owned.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = "x"
        with pytest.raises(SettingsError) as err:
            validate_settings({"provider": provider, "providerParamOverrides": override})
        assert [p.reason for p in err.value.problems] == ["ForbiddenOverride"], owned
        assert owned in str(err.value)


def test_catalog_covers_every_provider_and_its_defaults() -> None:
    assert set(PROVIDERS) == set(get_args(Provider))
    for name, entry in PROVIDERS.items():
        for shape, profile in entry.profiles.items():
            assert profile.voices.offers(profile.default_voice), (name, shape)
        assert DEFAULT_VOICES[name] == entry.profile("ga").default_voice


def test_openai_voices_are_the_sdk_voices() -> None:
    (ga_literal,) = [a for a in get_args(ga_output.Voice) if get_args(a)]
    beta_voice = beta_session.Session.model_fields["voice"].annotation
    (beta_literal,) = [a for a in get_args(beta_voice) if get_args(a)]
    ga, beta = PROVIDERS["openai"].profile("ga").voices, PROVIDERS["openai"].profile("beta").voices
    assert isinstance(ga, FixedVoices) and isinstance(beta, FixedVoices)
    assert ga.names == frozenset(get_args(ga_literal))
    assert beta.names == frozenset(get_args(beta_literal))


@pytest.mark.parametrize("caller", get_args(CallerAudioFormat))
@pytest.mark.parametrize("shape", ["ga", "beta"])
def test_openai_formats_sent_are_in_the_catalog(caller: str, shape: proto.Shape) -> None:
    settings = parse_settings({"provider": "openai", "audio": {"input": caller, "output": caller}})
    profile = PROVIDERS["openai"].profile(shape)
    inp, out = proto.provider_formats(settings)
    assert inp in {f.audio for f in profile.input_formats}
    assert out in {f.audio for f in profile.output_formats}
    session = first_update(settings, shape)
    if shape == "ga":
        sent_in = session["audio"]["input"]["format"]["type"]
        sent_out = session["audio"]["output"]["format"]["type"]
    else:
        sent_in, sent_out = session["input_audio_format"], session["output_audio_format"]
    assert {f.wire_name: f.audio for f in profile.input_formats}[sent_in] == inp
    assert {f.wire_name: f.audio for f in profile.output_formats}[sent_out] == out


def test_gemini_formats_sent_are_in_the_catalog() -> None:
    profile = PROVIDERS["gemini"].profile("ga")
    (inp,) = profile.input_formats
    sent = gemini_codec.audio_message(b"\x00\x00", inp.audio.sample_rate_hz)
    assert sent["realtimeInput"]["audio"]["mimeType"] == inp.wire_name
    (out,) = profile.output_formats
    part = {"inlineData": {"mimeType": out.wire_name, "data": "AAA="}}
    assert gemini_codec.inline_audio(part) == b"\x00\x00"
