from rtvoice.v1 import frames_pb2 as _frames_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordStart(_message.Message):
    __slots__ = ("session", "agent_settings_json", "provider", "model", "resumed", "spans_dropped", "part")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    SPANS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    session: _frames_pb2.SessionStart
    agent_settings_json: str
    provider: str
    model: str
    resumed: bool
    spans_dropped: int
    part: int
    def __init__(self, session: _Optional[_Union[_frames_pb2.SessionStart, _Mapping]] = ..., agent_settings_json: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., resumed: _Optional[bool] = ..., spans_dropped: _Optional[int] = ..., part: _Optional[int] = ...) -> None: ...

class LinkStats(_message.Message):
    __slots__ = ("frames_sent", "frames_dropped", "spans_dropped", "caller_audio_frames_dropped", "agent_audio_frames_dropped")
    FRAMES_SENT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    SPANS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    CALLER_AUDIO_FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    AGENT_AUDIO_FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    frames_sent: int
    frames_dropped: int
    spans_dropped: int
    caller_audio_frames_dropped: int
    agent_audio_frames_dropped: int
    def __init__(self, frames_sent: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., spans_dropped: _Optional[int] = ..., caller_audio_frames_dropped: _Optional[int] = ..., agent_audio_frames_dropped: _Optional[int] = ...) -> None: ...

class RecordFrame(_message.Message):
    __slots__ = ("seq", "t_us", "start", "client", "server", "span", "end", "link_stats")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    T_US_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LINK_STATS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    t_us: int
    start: RecordStart
    client: _frames_pb2.ClientFrame
    server: _frames_pb2.ServerFrame
    span: _frames_pb2.Span
    end: _frames_pb2.EndFrame
    link_stats: LinkStats
    def __init__(self, seq: _Optional[int] = ..., t_us: _Optional[int] = ..., start: _Optional[_Union[RecordStart, _Mapping]] = ..., client: _Optional[_Union[_frames_pb2.ClientFrame, _Mapping]] = ..., server: _Optional[_Union[_frames_pb2.ServerFrame, _Mapping]] = ..., span: _Optional[_Union[_frames_pb2.Span, _Mapping]] = ..., end: _Optional[_Union[_frames_pb2.EndFrame, _Mapping]] = ..., link_stats: _Optional[_Union[LinkStats, _Mapping]] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[RecordFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[RecordFrame, _Mapping]]] = ...) -> None: ...

class RecordAck(_message.Message):
    __slots__ = ("durable_seq", "finalized", "archive_uri", "error", "recorder_id")
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    FINALIZED_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_URI_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RECORDER_ID_FIELD_NUMBER: _ClassVar[int]
    durable_seq: int
    finalized: bool
    archive_uri: str
    error: _frames_pb2.ErrorFrame
    recorder_id: str
    def __init__(self, durable_seq: _Optional[int] = ..., finalized: _Optional[bool] = ..., archive_uri: _Optional[str] = ..., error: _Optional[_Union[_frames_pb2.ErrorFrame, _Mapping]] = ..., recorder_id: _Optional[str] = ...) -> None: ...
