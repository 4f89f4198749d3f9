"""G.711 tables against CPython's audioop (deprecated, still present in 3.11) for every input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rtvoice.core import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_for_all_inputs() -> None:
    assert g711.pcm16_to_ulaw(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.tobytes(), 2)


def test_alaw_encode_matches_audioop_for_all_inputs() -> None:
    assert g711.pcm16_to_alaw(ALL_PCM) == audioop.lin2alaw(ALL_PCM.tobytes(), 2)


def test_decoders_match_audioop_for_all_codes() -> None:
    assert g711.ulaw_to_pcm16(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_to_pcm16(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_round_trip_error_is_within_the_segment_step() -> None:
    tone = (8000 * np.sin(np.arange(1600) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    back = g711.ulaw_to_pcm16(g711.pcm16_to_ulaw(tone)).astype(np.int32)
    # µ-law quantization step at |x| ~ 8000 is 256; the error is at most half a step plus the bias.
    assert np.max(np.abs(back - tone)) <= 256
