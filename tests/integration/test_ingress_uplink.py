"""The ingress's uplink (caller → bridge half of ``Converse``) over a real gRPC stream on loopback: frames
go out one by one while the stream keeps up, contiguous caller audio is merged (with its frame count)
when writes fall behind, order and bytes are kept exactly, and a broken stream is reported once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import grpc.aio

from rtvoice.core.audio import PCM16_16K
from rtvoice.ingress.uplink import BridgeUplink
from rtvoice.v1 import bridge_pb2_grpc
from rtvoice.v1 import frames_pb2 as pb

FRAME = PCM16_16K.bytes_for_ms(20)


class _Reader(bridge_pb2_grpc.RealtimeBridgeServicer):
    """Collects what arrives; ``delay_s`` per message makes the client's writes wait (flow control)."""

    def __init__(self, delay_s: float = 0.0, fail_after: int | None = None) -> None:
        self.got: list[pb.ClientFrame] = []
        self.delay_s = delay_s
        self.fail_after = fail_after
        self.done = asyncio.Event()

    async def Converse(
        self, request_iterator: AsyncIterator[pb.ClientFrame], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ServerFrame]:
        try:
            async for frame in request_iterator:
                self.got.append(frame)
                if self.fail_after is not None and len(self.got) >= self.fail_after:
                    await context.abort(grpc.StatusCode.INTERNAL, "bridge failed")
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
        finally:
            self.done.set()
        return
        yield  # a generator: the stream-stream handler shape


async def _serve(servicer: _Reader) -> tuple[grpc.aio.Server, grpc.aio.Channel]:
    server = grpc.aio.server()
    bridge_pb2_grpc.add_RealtimeBridgeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


async def _until_received(reader: _Reader, uplink: BridgeUplink, n: int, timeout_s: float = 10.0) -> None:
    """Wait until the bridge has read ``n`` messages (or the uplink failed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(reader.got) < n and not uplink.failed:
        assert loop.time() < deadline, f"the bridge read {len(reader.got)} of {n} messages"
        await asyncio.sleep(0.005)


def _audio(i: int) -> pb.ClientFrame:
    data = bytes([i % 251]) * FRAME
    return pb.ClientFrame(audio=pb.AudioFrame(data=data, format=PCM16_16K.to_proto(), sequence=i + 1))


async def test_real_time_frames_go_out_one_by_one() -> None:
    reader = _Reader()
    server, channel = await _serve(reader)
    try:
        call = bridge_pb2_grpc.RealtimeBridgeStub(channel).Converse()
        uplink = BridgeUplink(call, PCM16_16K.bytes_per_ms, lambda err: None)
        for i in range(10):  # a caller at pace: the next frame comes after the previous one went out
            uplink.put(_audio(i))
            await _until_received(reader, uplink, i + 1)
        assert await uplink.finish([pb.ClientFrame(end=pb.EndFrame())], 5.0)
        await asyncio.wait_for(reader.done.wait(), 5)
        await uplink.aclose()
        assert [f.WhichOneof("frame") for f in reader.got] == ["audio"] * 10 + ["end"]
        assert uplink.merged_writes == 0
    finally:
        await channel.close()
        await server.stop(None)


async def test_a_backlog_is_merged_in_order_with_its_frame_count() -> None:
    reader = _Reader(delay_s=0.03)  # the bridge reads slower than the caller sends
    server, channel = await _serve(reader)
    try:
        call = bridge_pb2_grpc.RealtimeBridgeStub(channel).Converse()
        uplink = BridgeUplink(call, PCM16_16K.bytes_per_ms, lambda err: None)
        sent = [_audio(i) for i in range(60)]
        for frame in sent[:30]:
            uplink.put(frame)
        uplink.put(pb.ClientFrame(text=pb.TextInput(text="between")))  # a control frame splits a run
        for frame in sent[30:]:
            uplink.put(frame)
        assert await uplink.finish([pb.ClientFrame(end=pb.EndFrame())], 10.0)
        await asyncio.wait_for(reader.done.wait(), 10)
        await uplink.aclose()
        kinds = [f.WhichOneof("frame") for f in reader.got]
        assert kinds[-1] == "end" and kinds.count("text") == 1
        text_at = kinds.index("text")
        audio = [f.audio for f in reader.got if f.WhichOneof("frame") == "audio"]
        before = [f.audio for f in reader.got[:text_at] if f.WhichOneof("frame") == "audio"]
        assert len(audio) < 60 and uplink.merged_writes > 0  # fewer messages than frames
        assert sum(max(1, a.frames) for a in audio) == 60  # every caller frame counted
        assert sum(max(1, a.frames) for a in before) == 30  # nothing crossed the control frame
        assert b"".join(a.data for a in audio) == b"".join(f.audio.data for f in sent)  # bytes, in order
        assert all(len(a.data) <= PCM16_16K.bytes_for_ms(200) for a in audio)  # the merge bound
        assert audio[-1].sequence == 60  # a merged frame carries the sequence of its last frame
    finally:
        await channel.close()
        await server.stop(None)


async def test_a_failed_stream_is_reported_once_and_stops_writing() -> None:
    reader = _Reader(fail_after=3)
    server, channel = await _serve(reader)
    failures: list[BaseException] = []
    try:
        call = bridge_pb2_grpc.RealtimeBridgeStub(channel).Converse()
        uplink = BridgeUplink(call, PCM16_16K.bytes_per_ms, failures.append)
        for i in range(20):  # one at a time, so the bridge sees (and fails on) separate messages
            uplink.put(_audio(i))
            await _until_received(reader, uplink, i + 1)
        assert not await uplink.finish([pb.ClientFrame(end=pb.EndFrame())], 5.0)
        await uplink.aclose()
        # gRPC says so on the write in flight (AioRpcError) or on the next one (InvalidStateError).
        assert len(failures) == 1
        assert isinstance(failures[0], grpc.aio.AioRpcError | asyncio.InvalidStateError)
        assert uplink.failed
    finally:
        await channel.close()
        await server.stop(None)
