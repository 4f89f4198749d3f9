"""ToolRuntime against a real HTTP endpoint on loopback: results, typed error outputs, truncation, cancel."""

from __future__ import annotations

import asyncio
import json

from rtvoice.bridge.tools import TRUNCATION_MARK, ToolRuntime, truncate_output
from rtvoice.core.settings import ToolSpec
from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge_tool_http import tool_server


def spec(endpoint: str, **kw: object) -> ToolSpec:
    return ToolSpec.model_validate({"name": kw.pop("name", "t"), "endpoint": endpoint, **kw})


async def run_calls(specs: list[ToolSpec], calls: list[pb.ToolCall]) -> dict[str, pb.ToolResult]:
    results: dict[str, pb.ToolResult] = {}
    got = asyncio.Event()

    async def on_result(r: pb.ToolResult) -> None:
        results[r.call_id] = r
        if len(results) == len(calls):
            got.set()

    rt = ToolRuntime(specs, on_result)
    for c in calls:
        rt.start(c)
    await asyncio.wait_for(got.wait(), 10)
    await rt.aclose()
    return results


async def test_results_and_error_outputs() -> None:
    with tool_server() as ts:
        specs = [
            spec(ts.url + "/echo", name="echo"),
            spec(ts.url + "/fail", name="fail"),
            spec("http://127.0.0.1:9/", name="down", timeoutMs=2000),
            spec(ts.url + "/big", name="big", maxResultChars=64),
        ]
        calls = [
            pb.ToolCall(call_id="1", name="echo", arguments_json='{"city": "Oslo"}'),
            pb.ToolCall(call_id="2", name="fail", arguments_json="{}"),
            pb.ToolCall(call_id="3", name="down", arguments_json="{}"),
            pb.ToolCall(call_id="4", name="big", arguments_json="{}"),
            pb.ToolCall(call_id="5", name="nope", arguments_json="{}"),
            pb.ToolCall(call_id="6", name="echo", arguments_json="[1, 2]"),
            pb.ToolCall(call_id="7", name="echo", arguments_json="{not json"),
        ]
        r = await run_calls(specs, calls)
    assert not r["1"].is_error and json.loads(r["1"].output) == {"echo": {"city": "Oslo"}}
    assert r["2"].is_error and "HTTP 500" in json.loads(r["2"].output)["error"]
    assert r["3"].is_error and "unreachable" in json.loads(r["3"].output)["error"]
    assert not r["4"].is_error and len(r["4"].output) == 64 and r["4"].output.endswith(TRUNCATION_MARK)
    assert r["5"].is_error and "unknown tool" in r["5"].output
    assert r["6"].is_error and "JSON object" in r["6"].output
    assert r["7"].is_error and "not valid JSON" in r["7"].output
    assert all(res.name for res in r.values())


async def test_timeout_and_cancel() -> None:
    with tool_server(slow_s=1.0) as ts:
        results: list[pb.ToolResult] = []

        async def on_result(res: pb.ToolResult) -> None:
            results.append(res)

        rt = ToolRuntime([spec(ts.url + "/slow", name="slow", timeoutMs=200)], on_result)
        rt.start(pb.ToolCall(call_id="a", name="slow", arguments_json="{}"))
        rt.start(pb.ToolCall(call_id="b", name="slow", arguments_json="{}"))
        assert rt.cancel(["b", "zzz"]) == ["b"]
        for _ in range(100):
            if results:
                break
            await asyncio.sleep(0.02)
        await rt.aclose()
    assert [r.call_id for r in results] == ["a"]
    assert results[0].is_error and "timed out after 200 ms" in results[0].output
    assert rt.running == []


def test_truncate_output() -> None:
    assert truncate_output("abc", 10) == "abc"
    cut = truncate_output("x" * 100, 20)
    assert len(cut) == 20 and cut.endswith(TRUNCATION_MARK)
