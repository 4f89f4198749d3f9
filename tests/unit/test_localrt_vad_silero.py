"""silero-vad turn detection (ONNX via onnxruntime) and the VAD choice of a session."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from rtvoice.core.settings import LocalEngine
from rtvoice.localrt.audio_in import vad_for
from rtvoice.localrt.config import default_turn_detection
from rtvoice.localrt.silero import SileroClassifier, SileroDetector, model_path
from rtvoice.localrt.vad import PAUSE_MS, VoiceActivityDetector
from tests.support.speech import synthesize_pcm16

TEXTS = ["what is the weather today", "turn on the lights in the kitchen please"]


def speech(text: str) -> np.ndarray:
    return np.frombuffer(synthesize_pcm16(text), dtype="<i2")


def voiced_end_ms(samples: np.ndarray) -> float:
    return float(np.nonzero(np.abs(samples) > 200)[0][-1] / 16)


def run(vad: SileroDetector, x: np.ndarray, chunk: int = 480) -> list[tuple[str, int]]:
    events = []
    for i in range(0, x.size, chunk):  # 30 ms chunks: not aligned with the 32 ms frames
        events += vad.process(x[i : i + chunk])
    return [(e.kind, e.ms) for e in events if e.kind != "audio"]


@pytest.mark.parametrize("noise", [0.0, 100.0])
@pytest.mark.parametrize("text", TEXTS)
def test_silero_start_pause_stop_times(text: str, noise: float) -> None:
    rng = np.random.default_rng(5)
    sp = speech(text)
    lead_ms, clock_ms = 700, 3000
    x = np.concatenate([np.zeros(16 * lead_ms), sp, np.zeros(16 * 1500)])
    x = (x + rng.normal(0, noise, x.size)).astype(np.int16)
    vad = SileroDetector(0.5, 300, 500, clock_start_ms=clock_ms, pause_ms=PAUSE_MS)
    marks = run(vad, x)
    assert [k for k, _ in marks] == ["start", "pause", "stop"]
    first = np.nonzero(np.abs(sp) > 200)[0][0] / 16
    assert abs(marks[0][1] - (clock_ms + lead_ms + first)) <= 100
    end = clock_ms + lead_ms + voiced_end_ms(sp)
    assert -40 <= marks[2][1] - end <= 160  # silero's probability fades ~100 ms after the voice
    assert marks[1][1] == marks[2][1]  # the pause names the same end of speech, earlier


def test_silero_ignores_silence_and_noise_and_keeps_state_per_session() -> None:
    assert SileroDetector().process(np.zeros(16000 * 2, np.int16)) == []
    noise = np.random.default_rng(3).normal(0, 300, 16000 * 3).astype(np.int16)
    assert [e for e in SileroDetector().process(noise) if e.kind == "start"] == []
    a, b = SileroClassifier(), SileroClassifier()
    frame = speech("hello there")[4000 : 4000 + 512]
    pa = [a.probability(frame) for _ in range(3)]
    assert b.probability(np.zeros(512, np.int16)) < 0.2 and max(pa) > 0.5


def test_threshold_is_validated_and_decides_frames() -> None:
    with pytest.raises(ValueError):
        SileroDetector(threshold=1.5)
    rng = np.random.default_rng(1)
    frame = (speech("hello there")[3000 : 3000 + 512] * 0.3 + rng.normal(0, 800, 512)).astype(np.int16)
    p = SileroClassifier().probability(frame)
    assert 0.0 < p < 1.0
    assert SileroClassifier(max(0.0, p - 0.01)).is_speech(frame, in_speech=False)
    assert not SileroClassifier(min(1.0, p + 0.01)).is_speech(frame, in_speech=False)
    # a low threshold still ends the turn in silence
    x = np.concatenate(
        [np.zeros(8000, np.int16), speech("what is the weather today"), np.zeros(24000, np.int16)]
    )
    assert [k for k, _ in run(SileroDetector(threshold=0.05), x)] == ["start", "stop"]


def test_vad_choice_of_a_session() -> None:
    td = default_turn_detection()
    assert isinstance(vad_for(td, 0, "silero"), SileroDetector)
    assert isinstance(vad_for(td, 0, "webrtc"), VoiceActivityDetector)
    assert vad_for(None, 0, "silero") is None
    fresh = vad_for(td, 0, "silero")
    assert fresh is not None and isinstance(fresh.fresh(1000), type(fresh))


def test_model_is_found_without_importing_the_silero_package() -> None:
    code = (
        "import sys; from rtvoice.localrt.silero import model_path, inference_session; "
        "p = model_path(); inference_session(); "
        "assert p.name == 'silero_vad.onnx' and p.is_file(); "
        "assert 'silero_vad' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert model_path().parent.name == "data"


def test_agent_settings_choose_the_turn_detector() -> None:
    assert LocalEngine().vad == "silero" and LocalEngine().stt.kind == "auto"
    args = LocalEngine.model_validate({"vad": "webrtc", "stt": {"kind": "whisper"}}).cli_args()
    assert args[args.index("--vad") + 1] == "webrtc" and args[args.index("--stt") + 1] == "whisper"
    with pytest.raises(ValidationError):
        LocalEngine.model_validate({"vad": "energy"})
