"""silero-vad (ONNX) as a frame classifier for turn detection, run with onnxruntime directly.

The model file ships in the ``silero-vad`` wheel (``silero_vad/data/silero_vad.onnx``); it is found with
``importlib.util.find_spec`` without importing the package (whose ``__init__`` imports torch). The wheel is
installed with ``--no-deps`` (``scripts/install-extras.sh``) for the same reason.

Model interface at 16 kHz: input ``(1, 64 + 512)`` float32 in -1..1 (64 samples of context from the
previous frame + a 512-sample = 32 ms frame), ``state`` ``(2, 1, 128)`` float32 carried across frames,
``sr`` int64 16000; outputs the speech probability ``(1, 1)`` and the next state. One
``InferenceSession`` serves the whole process (onnxruntime sessions are thread-safe); the state lives in
each :class:`SileroClassifier` (one per session).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime

from rtvoice.localrt.vad import FrameClassifier, Samples, SpeechSegmenter, check_threshold

FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
SAMPLE_RATE_HZ = 16000
HYSTERESIS = 0.15
"""Once in speech, a frame stays speech down to ``threshold - HYSTERESIS`` (as silero's own iterator)."""


class SileroUnavailableError(RuntimeError):
    """The silero-vad wheel (model file) is not installed; run ``scripts/install-extras.sh``."""


def model_path() -> Path:
    """Path of ``silero_vad.onnx`` inside the installed ``silero-vad`` wheel (the package is not imported).

    Raises :class:`SileroUnavailableError` when the wheel or the file is missing.
    """
    spec = importlib.util.find_spec("silero_vad")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise SileroUnavailableError(
        "silero_vad/data/silero_vad.onnx not found: install it with "
        "'pip install --no-deps silero-vad' (scripts/install-extras.sh)"
    )


@functools.cache
def inference_session() -> onnxruntime.InferenceSession:
    """The process-wide onnxruntime session of the model (one intra-op thread: tiny model, many sessions)."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )


class SileroClassifier:
    """Speech when silero's probability ≥ ``threshold`` (0–1); once in speech, while it stays
    ≥ ``max(threshold / 2, threshold - HYSTERESIS)``."""

    frame_samples = FRAME_SAMPLES

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = check_threshold(threshold)
        self._session = inference_session()
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._sr = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
        self.last_probability = 0.0

    def probability(self, frame: Samples) -> float:
        """Speech probability 0..1 of one 512-sample frame (updates the recurrent state and context)."""
        x = frame.astype(np.float32) / 32768.0
        inp = np.concatenate([self._context, x])[np.newaxis, :]
        out, self._state = self._session.run(None, {"input": inp, "state": self._state, "sr": self._sr})
        self._context = x[-CONTEXT_SAMPLES:]
        self.last_probability = float(out[0][0])
        return self.last_probability

    def is_speech(self, frame: Samples, in_speech: bool) -> bool:
        p = self.probability(frame)
        if in_speech:  # never below half the threshold: a low threshold must still end a turn
            return p >= max(self.threshold / 2, self.threshold - HYSTERESIS)
        return p >= self.threshold


class SileroDetector(SpeechSegmenter):
    """server_vad with silero-vad frames (32 ms); arguments as :class:`rtvoice.localrt.vad.SpeechSegmenter`.

    Raises ``ValueError`` for out-of-range settings, :class:`SileroUnavailableError` without the model.
    """

    def make_classifier(self, threshold: float) -> FrameClassifier:
        return SileroClassifier(threshold)
