"""Archives in a real S3 API server on loopback (moto): keys, sha256s, multipart, store outages."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtvoice.recorder.archive_source import S3Archive
from rtvoice.recorder.s3 import S3Options
from rtvoice.recorder.sessions_cmd import sessions_list, sessions_show
from rtvoice.recorder.stores import S3Store
from rtvoice.v1 import frames_pb2 as pb
from tests.support.recorder import Frames, running_recorder, send_session, tone
from tests.support.s3 import BUCKET, MotoServer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_moto() -> Iterator[MotoServer]:
    """A server this test may stop and start again (same port)."""
    server = MotoServer()
    server.start()
    yield server
    server.stop()


def _get(opts: S3Options, key: str) -> bytes:
    resp = opts.client().get_object(opts.bucket, key)
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


def assert_archive_in_s3(opts: S3Options, session_id: str) -> dict[str, Any]:
    """The archive is under <prefix>/echo/2026/01/02/<id>/ and every file matches the manifest's sha256."""
    folder = f"{opts.prefix}/echo/2026/01/02/{session_id}"
    names = {o.object_name for o in opts.client().list_objects(BUCKET, prefix=folder + "/", recursive=True)}
    assert names == {f"{folder}/{n}" for n in ("audio.wav", "transcript.json", "spans.json", "manifest.json")}
    manifest: dict[str, Any] = json.loads(_get(opts, f"{folder}/manifest.json"))
    for entry in manifest["files"]:
        data = _get(opts, f"{folder}/{entry['name']}")
        assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    return manifest


def short_session(session_id: str) -> Frames:
    f = Frames(session_id)
    f.caller_stream(0, tone(440, 1000))
    f.server(1100, response_started=pb.ResponseStarted(response_id="r1"))
    f.agent_burst(1200, tone(600, 500), item_id="a1")
    f.server(1300, response_done=pb.ResponseDone(response_id="r1", status="completed"))
    f.span(50, "provider.connect")
    return f


async def test_archive_lands_under_its_key_with_matching_sha256(tmp_path: Path, moto: MotoServer) -> None:
    opts = moto.options(prefix="rec")
    f = short_session("s3-one")
    f.end(2000)
    async with running_recorder(tmp_path, S3Store(opts)) as server:
        acks = await send_session(server.port, f.frames)
        assert acks[-1].finalized
        assert acks[-1].archive_uri == f"s3://{BUCKET}/rec/echo/2026/01/02/s3-one/"
        assert await server.service.uploads.drain(30)
    manifest = assert_archive_in_s3(opts, "s3-one")
    assert manifest["complete"] is True
    assert not (tmp_path / "spool" / "s3-one").exists()
    out = io.StringIO()
    assert sessions_list(S3Archive(opts), out) == 0
    assert "s3-one" in out.getvalue() and "default/echo" in out.getvalue()
    out = io.StringIO()
    assert sessions_show(S3Archive(opts), "s3-one", out) == 0
    assert "audio.wav" in out.getvalue() and manifest["files"][0]["sha256"] in out.getvalue()


async def test_long_session_uploads_in_parts(tmp_path: Path, moto: MotoServer) -> None:
    opts = moto.options(prefix="long")
    f = Frames("s3-long")
    rng = np.random.default_rng(7)
    caller = rng.integers(-3000, 3000, 16000 * 100, dtype=np.int16)  # 100 s: a 6.4 MB stereo WAV
    end = f.caller_stream(0, caller, frame_ms=200)
    f.end(end)
    async with running_recorder(tmp_path, S3Store(opts)) as server:
        acks = await send_session(server.port, f.frames)
        assert acks[-1].finalized
        assert await server.service.uploads.drain(60)
    manifest = assert_archive_in_s3(opts, "s3-long")
    wav = next(e for e in manifest["files"] if e["name"] == "audio.wav")
    assert wav["size"] > 5 * 1024 * 1024
    st = opts.client().stat_object(BUCKET, "long/echo/2026/01/02/s3-long/audio.wav")
    assert st.etag is not None and st.etag.endswith("-2")  # a multipart upload of two parts


async def test_store_outage_spools_and_uploads_when_it_returns(tmp_path: Path, own_moto: MotoServer) -> None:
    opts = own_moto.options(prefix="outage")
    f = short_session("s3-outage")
    f.end(2000)
    async with running_recorder(tmp_path, S3Store(opts), upload_wait_s=0.2, resume_grace_s=60) as server:
        await send_session(server.port, f.frames[:40], wait_final=False)
        own_moto.stop()  # the store goes down before the session ends
        acks = await send_session(server.port, [_resumed(f.frames[0]), *f.frames[40:]])
        assert acks[-1].finalized  # the archive is final in the spool even though the store is down
        assert server.service.pending_uploads == ["s3-outage"]
        assert (tmp_path / "spool" / "s3-outage" / "archive" / "manifest.json").exists()
        own_moto.start()  # back (empty: moto keeps objects in memory; the bucket is re-created)
        assert await server.service.uploads.drain(30)
    manifest = assert_archive_in_s3(opts, "s3-outage")
    assert manifest["complete"] is True and manifest["counts"]["resumes"] == 1
    assert not (tmp_path / "spool" / "s3-outage").exists()


async def test_pending_spool_is_uploaded_after_a_recorder_restart(
    tmp_path: Path, own_moto: MotoServer
) -> None:
    opts = own_moto.options(prefix="restart")
    f = short_session("s3-restart")
    f.end(2000)
    own_moto.stop()
    async with running_recorder(tmp_path, S3Store(opts), upload_wait_s=0.2) as server:
        acks = await send_session(server.port, f.frames)
        assert acks[-1].finalized and server.service.pending_uploads == ["s3-restart"]
    assert (tmp_path / "spool" / "s3-restart" / "finalized.json").exists()  # the recorder stopped
    own_moto.start()
    async with running_recorder(tmp_path, S3Store(opts)) as server:  # a new recorder on the same spool
        assert await server.service.uploads.drain(30)
    manifest = assert_archive_in_s3(opts, "s3-restart")
    assert manifest["complete"] is True and manifest["counts"]["spans"] == 1
    assert not (tmp_path / "spool" / "s3-restart").exists()


def _resumed(start_frame: Any) -> Any:
    frame = type(start_frame)()
    frame.CopyFrom(start_frame)
    frame.start.resumed = True
    return frame
