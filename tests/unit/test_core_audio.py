"""Audio formats, frame validation and the low-delay streaming converter."""

from __future__ import annotations

import numpy as np
import pytest

from rtvoice.core.audio import (
    FORMATS,
    PCM16_16K,
    PCM16_24K,
    AudioConverter,
    AudioFormat,
    StreamResampler,
    validate_frame,
)
from rtvoice.core.errors import RealtimeAudioFormatError
from rtvoice.v1 import frames_pb2 as pb


def _tone(rate: int, ms: int, hz: float = 440.0) -> np.ndarray:
    n = rate * ms // 1000
    return (10000 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.int16)


def test_format_names_and_sizes() -> None:
    assert PCM16_16K.name == "pcm16_16k"
    assert PCM16_24K.bytes_per_ms == 48
    assert FORMATS["g711_mulaw"].bytes_per_ms == 8
    assert PCM16_16K.bytes_for_ms(20) == 640
    assert AudioFormat.parse("pcm16_24k") == PCM16_24K


def test_parse_unknown_format_names_the_accepted_ones() -> None:
    with pytest.raises(RealtimeAudioFormatError) as err:
        AudioFormat.parse("mp3")
    assert "pcm16_16k" in err.value.message and err.value.code == "unknown_format"


def test_proto_round_trip_and_bad_rate() -> None:
    for fmt in FORMATS.values():
        assert AudioFormat.from_proto(fmt.to_proto()) == fmt
    with pytest.raises(RealtimeAudioFormatError) as err:
        AudioFormat.from_proto(pb.AudioFormat(encoding=pb.AUDIO_ENCODING_G711_MULAW, sample_rate_hz=16000))
    assert err.value.code == "wrong_rate"
    with pytest.raises(RealtimeAudioFormatError):
        AudioFormat.from_proto(pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=11025))


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty_frame"), (b"\x00" * 641, "odd_pcm_length"), (b"\x00" * 64000, "frame_too_large")],
)
def test_validate_frame_rejects_with_typed_codes(data: bytes, code: str) -> None:
    with pytest.raises(RealtimeAudioFormatError) as err:
        validate_frame(data, PCM16_16K, max_ms=1000)
    assert err.value.code == code
    assert err.value.to_frame().kind == pb.ERROR_KIND_AUDIO_FORMAT


def test_validate_frame_accepts_a_20ms_frame() -> None:
    validate_frame(b"\x00" * 640, PCM16_16K)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("pcm16_16k", "pcm16_24k"),
        ("pcm16_24k", "pcm16_16k"),
        ("g711_mulaw", "pcm16_24k"),
        ("pcm16_24k", "g711_mulaw"),
    ],
)
def test_streaming_conversion_keeps_duration_and_low_delay(src: str, dst: str) -> None:
    s, d = AudioFormat.parse(src), AudioFormat.parse(dst)
    conv = AudioConverter(s, d)
    frame_in = s.bytes_for_ms(20)
    signal = _tone(s.sample_rate_hz, 1000)
    from rtvoice.core.audio import encode

    data = encode(signal, s)
    out = bytearray()
    held_ms = []
    for i in range(0, len(data), frame_in):
        out += conv.convert(data[i : i + frame_in])
        held_ms.append(s.duration_ms(i + frame_in) - d.duration_ms(len(out)))
    # A 20 ms frame in gives ~20 ms out: the converter never holds more than ~2 frames.
    assert max(held_ms) <= 45
    out += conv.flush()
    assert abs(d.duration_ms(len(out)) - 1000) <= 2


def test_passthrough_when_formats_match() -> None:
    conv = AudioConverter(FORMATS["g711_mulaw"], FORMATS["g711_mulaw"])
    assert conv.passthrough and conv.convert(b"\x01\x02") == b"\x01\x02" and conv.flush() == b""


def test_resampled_tone_keeps_its_frequency() -> None:
    rs = StreamResampler(16000, 24000)
    x = _tone(16000, 500, hz=1000)
    y = np.concatenate([rs.process(x[i : i + 320]) for i in range(0, len(x), 320)] + [rs.flush()])
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 24000 / len(y)
    assert abs(peak_hz - 1000) < 5
