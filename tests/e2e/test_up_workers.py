"""`rtvoice up --workers 2`: two bridges behind the ingress's placement and two ingress workers sharing
the caller port (SO_REUSEPORT), against an OpenAI Realtime fake on loopback; every call is answered and
archived, both bridges take calls, both ingress workers listen on the one port, and Ctrl-C stops every
worker."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from rtvoice.caller.client import place_call
from tests.e2e.calls import speech_call, up_on_fake, wait_archive
from tests.support.fake_openai import FakeOpenAI, Scenario

pytestmark = pytest.mark.slow


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (``/proc/net/tcp`` and ``tcp6``, state 0A)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    out: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            out.add(target[len("socket:[") : -1])
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_two_workers_per_service_share_the_calls(tmp_path: Path) -> None:
    async with (
        FakeOpenAI(Scenario(reply_audio_ms=400, chunk_ms=40, pace_s=0.02)) as fake,
        up_on_fake(tmp_path, fake, "--workers", "2") as up,
    ):
        pids = up.info["service_pids"]
        assert len(pids["bridge"]) == 2 and len(pids["ingress"]) == 2 and up.info["workers"] == 2
        port = int(up.caller_url.split(":")[2].split("/")[0])
        listening = _listening_inodes(port)
        for pid in pids["ingress"]:
            assert _socket_inodes(pid) & listening, f"ingress worker {pid} does not listen on {port}"

        opts = speech_call(up, tmp_path, "will it rain tomorrow", hold_s=0.5)
        results = await asyncio.gather(*(place_call(opts, on_line=lambda _l: None) for _ in range(6)))
        for r in results:
            assert r.ended_reason == "caller_hangup" and r.first_audio_latency_ms is not None
            await wait_archive(up, r.session_id)
        placed_on = set(re.findall(r"started on (127\.0\.0\.1:\d+)", up.log_text()))
        assert len(placed_on) == 2, placed_on  # both bridges took calls
        workers = [*pids["ingress"], *pids["bridge"]]
    for pid in workers:  # running_up sent Ctrl-C and waited for `rtvoice up` to exit
        assert not _alive(pid), f"worker {pid} outlived rtvoice up"
