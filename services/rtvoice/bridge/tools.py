"""Tool runtime of a bridge session: function calls run off the audio path.

A provider's ``ToolCall`` (name, JSON arguments) is POSTed as JSON to the tool's HTTP endpoint
(``settings.tools[].endpoint``) with ``httpx.AsyncClient`` in a task of its own, so caller audio and agent
audio keep flowing while it runs. The response body becomes the ``ToolResult.output`` given back to the
model. A timeout (``timeout_ms``), an HTTP error status, an unreachable endpoint, an unknown tool or
arguments that are not a JSON object become an *error output* ``{"error": "..."}`` (``is_error``) the model
can talk about. Outputs longer than ``max_result_chars`` are truncated. Calls the provider withdraws
(Gemini ``toolCallCancellation``) are cancelled and produce no result.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import httpx

from rtvoice.core.settings import ToolSpec
from rtvoice.v1 import frames_pb2 as pb

log = logging.getLogger(__name__)

TRUNCATION_MARK = "…[truncated]"

ResultHandler = Callable[[pb.ToolResult], Awaitable[None]]


def truncate_output(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, ending in :data:`TRUNCATION_MARK` when cut."""
    if len(text) <= max_chars:
        return text
    return text[: max(0, max_chars - len(TRUNCATION_MARK))] + TRUNCATION_MARK


def error_output(message: str) -> str:
    """The JSON text of an error output: ``{"error": message}``."""
    return json.dumps({"error": message})


class ToolRuntime:
    """Runs the calls of one session; ``on_result`` receives each finished ``ToolResult``."""

    def __init__(
        self,
        specs: Iterable[ToolSpec],
        on_result: ResultHandler,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._specs = {s.name: s for s in specs}
        self._on_result = on_result
        self._client = client
        self._owns_client = client is None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> list[str]:
        """Call ids still running."""
        return list(self._tasks)

    def start(self, call: pb.ToolCall) -> None:
        """Start ``call`` in the background (returns at once)."""
        task = asyncio.create_task(self._run(call), name=f"tool:{call.name}:{call.call_id}")
        self._tasks[call.call_id] = task
        task.add_done_callback(functools.partial(self._forget, call.call_id))

    def _forget(self, call_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(call_id, None)

    def cancel(self, call_ids: Iterable[str]) -> list[str]:
        """Cancel running calls; returns the ids that were running. No result is sent for them."""
        cancelled = []
        for cid in call_ids:
            task = self._tasks.pop(cid, None)
            if task is not None:
                task.cancel()
                cancelled.append(cid)
        return cancelled

    async def aclose(self) -> None:
        """Cancel every running call and close the HTTP client."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def _run(self, call: pb.ToolCall) -> None:
        t0 = time.monotonic()
        output, is_error = await self._invoke(call)
        spec = self._specs.get(call.name)
        if spec is not None:
            output = truncate_output(output, spec.max_result_chars)
        result = pb.ToolResult(
            call_id=call.call_id,
            name=call.name,
            output=output,
            is_error=is_error,
            duration_ms=int((time.monotonic() - t0) * 1000),
        )
        await self._on_result(result)

    async def _invoke(self, call: pb.ToolCall) -> tuple[str, bool]:
        spec = self._specs.get(call.name)
        if spec is None:
            return error_output(f"unknown tool {call.name!r}"), True
        try:
            args = json.loads(call.arguments_json or "{}")
        except ValueError:
            return error_output(f"arguments of {call.name} are not valid JSON"), True
        if not isinstance(args, dict):
            return error_output(f"arguments of {call.name} must be a JSON object"), True
        timeout_s = spec.timeout_ms / 1000.0
        try:
            async with asyncio.timeout(timeout_s):
                resp = await self._http().post(spec.endpoint, json=args, timeout=timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            return error_output(f"tool {call.name} timed out after {spec.timeout_ms} ms"), True
        except httpx.HTTPError as err:
            log.warning("tool %s failed: %s", call.name, err)
            return error_output(f"tool {call.name} is unreachable ({type(err).__name__})"), True
        if resp.status_code >= 400:
            return error_output(
                f"tool {call.name} failed with HTTP {resp.status_code}: {resp.text[:200]}"
            ), True
        return resp.text, False
