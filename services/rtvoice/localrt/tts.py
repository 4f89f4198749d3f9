"""Speech synthesis with espeak-ng, driven through ctypes from the PyPI package ``espeakng-loader``.

``espeakng-loader`` ships ``libespeak-ng.so`` and its data directory but no Python API, so this module
binds the few C functions needed (``espeak_Initialize`` in synchronous mode, ``espeak_SetSynthCallback``,
``espeak_SetVoiceByName``, ``espeak_SetParameter``, ``espeak_Synth``). espeak-ng keeps global state and is
not thread-safe: one :class:`Synthesizer` per process (:func:`get_synthesizer`), calls serialised by a lock.

Native output is PCM16 LE mono at :data:`NATIVE_RATE_HZ` (22050 Hz), delivered by espeak in chunks of
``buffer_ms`` while it synthesizes, which lets the engine stream the first audio before the whole
sentence is done. :func:`synthesize` resamples a whole utterance with ``rtvoice.core.audio.resample_once``.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import threading
from collections.abc import Callable

import espeakng_loader
import numpy as np
import numpy.typing as npt

from rtvoice.core.audio import resample_once
from rtvoice.localrt.voices import DEFAULT_VOICE, UnsupportedVoiceError, resolve_voice

log = logging.getLogger(__name__)

NATIVE_RATE_HZ = 22050
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1  # words per minute

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _EspeakEvent(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (the ``id`` union is 8 bytes)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


# int callback(short *wav, int numsamples, espeak_EVENT *events); return 1 to abort synthesis.
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)

Word = tuple[int, int]
"""A word of the input text: (0-based character offset, length in characters)."""

ChunkSink = Callable[[npt.NDArray[np.int16], list[Word]], bool]
"""Receives each native-rate chunk (PCM16 samples, 22050 Hz) and the words whose audio starts in it;
returns False to stop synthesis early."""


class TtsError(RuntimeError):
    """espeak-ng could not be loaded, initialised or failed to synthesize (message says which)."""


def espeak_voice(name: str | None) -> str:
    """The espeak-ng voice (+variant) of a session voice (OpenAI name like ``marin``, espeak name like
    ``en-gb-x-rp+f2``, or None = default). Raises :class:`UnsupportedVoiceError` for unknown names and
    for voices another synthesizer speaks (``piper:…``)."""
    resolved = resolve_voice(name)
    if resolved.engine != "espeak":
        raise UnsupportedVoiceError(f"voice {name!r} is not an espeak-ng voice")
    return resolved.voice_id


class Synthesizer:
    """The process-wide espeak-ng engine (synchronous mode, 22050 Hz PCM16 mono).

    Use :func:`get_synthesizer` rather than constructing it: espeak-ng has one global state.
    Raises :class:`TtsError` when the library cannot be initialised.
    """

    def __init__(self, buffer_ms: int = 60, rate_wpm: int = 175) -> None:
        self._lock = threading.Lock()
        try:
            self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise TtsError(f"cannot load espeak-ng from espeakng-loader: {exc}") from exc
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, buffer_ms, data_path.encode(), 0)
        if rate <= 0:
            raise TtsError(f"espeak_Initialize failed (returned {rate}) with data at {data_path}")
        self.sample_rate_hz = int(rate)
        self._sink: ChunkSink | None = None
        self._callback = _SynthCallback(self._on_chunk)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.rate_wpm = rate_wpm
        self._voice = ""
        self._set_voice(espeak_voice(DEFAULT_VOICE))

    def _on_chunk(
        self, wav: ctypes._Pointer[ctypes.c_short], numsamples: int, events: ctypes._Pointer[_EspeakEvent]
    ) -> int:
        if self._sink is None:
            return 0
        words: list[Word] = []
        if events:
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                if events[i].type == _EVENT_WORD:
                    words.append((events[i].text_position - 1, events[i].length))
                i += 1
        if not wav or numsamples <= 0:
            samples = np.zeros(0, dtype=np.int16)
        else:
            samples = np.ctypeslib.as_array(wav, shape=(numsamples,)).astype(np.int16, copy=True)
        if samples.size == 0 and not words:
            return 0
        try:
            keep_going = self._sink(samples, words)
        except Exception:  # an exception must not cross the C boundary
            log.exception("TTS chunk sink failed; aborting synthesis")
            return 1
        return 0 if keep_going else 1

    def _set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise TtsError(f"espeak-ng has no voice {voice!r}")
        self._voice = voice

    def stream(self, text: str, sink: ChunkSink, voice: str | None = None, speed: float = 1.0) -> None:
        """Synthesize ``text`` (plain text), calling ``sink`` with each 22050 Hz chunk as it is made.

        Blocking (run it in :data:`TTS_EXECUTOR`); calls are serialised. ``voice`` goes through
        :func:`espeak_voice`; ``speed`` scales the speaking rate (1.0 = 175 words/min).
        Raises :class:`TtsError` if espeak reports an error, :class:`UnsupportedVoiceError` for a voice
        that is not an espeak-ng voice.
        """
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._set_voice(espeak_voice(voice))
            self._lib.espeak_SetParameter(_PARAM_RATE, max(80, min(450, round(self.rate_wpm * speed))), 0)
            self._sink = sink
            try:
                status = self._lib.espeak_Synth(
                    data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
            finally:
                self._sink = None
        if status != 0:
            raise TtsError(f"espeak_Synth failed with status {status}")

    def synthesize_native(self, text: str, voice: str | None = None) -> npt.NDArray[np.int16]:
        """The whole utterance as PCM16 samples at :attr:`sample_rate_hz` (22050 Hz)."""
        chunks: list[npt.NDArray[np.int16]] = []

        def collect(chunk: npt.NDArray[np.int16], _words: list[Word]) -> bool:
            chunks.append(chunk)
            return True

        self.stream(text, collect, voice)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


TTS_EXECUTOR = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tts")
"""The worker thread that runs synthesis for the engine (espeak-ng is serialised anyway)."""

_instance: Synthesizer | None = None
_instance_lock = threading.Lock()


def get_synthesizer() -> Synthesizer:
    """The process-wide :class:`Synthesizer`, created on first use (~10 ms). Raises :class:`TtsError`."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = Synthesizer()
        return _instance


def synthesize(text: str, sample_rate_hz: int = 16000, voice: str | None = None) -> npt.NDArray[np.int16]:
    """Synthesize ``text`` to PCM16 mono samples at ``sample_rate_hz`` (one-shot soxr resampling)."""
    synth = get_synthesizer()
    return resample_once(synth.synthesize_native(text, voice), synth.sample_rate_hz, sample_rate_hz)
