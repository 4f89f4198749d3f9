from rtvoice.v1 import frames_pb2 as _frames_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Span(_message.Message):
    __slots__ = ("trace_id", "span_id", "parent_span_id", "name", "start_unix_ns", "end_unix_ns", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_unix_ns: int
    end_unix_ns: int
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., parent_span_id: _Optional[str] = ..., name: _Optional[str] = ..., start_unix_ns: _Optional[int] = ..., end_unix_ns: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RecordStart(_message.Message):
    __slots__ = ("session", "agent_settings_json", "provider", "model", "resumed", "spans_dropped")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    SPANS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    session: _frames_pb2.SessionStart
    agent_settings_json: str
    provider: str
    model: str
    resumed: bool
    spans_dropped: int
    def __init__(self, session: _Optional[_Union[_frames_pb2.SessionStart, _Mapping]] = ..., agent_settings_json: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., resumed: _Optional[bool] = ..., spans_dropped: _Optional[int] = ...) -> None: ...

class RecordFrame(_message.Message):
    __slots__ = ("seq", "t_us", "start", "client", "server", "span", "end")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    T_US_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    seq: int
    t_us: int
    start: RecordStart
    client: _frames_pb2.ClientFrame
    server: _frames_pb2.ServerFrame
    span: Span
    end: _frames_pb2.EndFrame
    def __init__(self, seq: _Optional[int] = ..., t_us: _Optional[int] = ..., start: _Optional[_Union[RecordStart, _Mapping]] = ..., client: _Optional[_Union[_frames_pb2.ClientFrame, _Mapping]] = ..., server: _Optional[_Union[_frames_pb2.ServerFrame, _Mapping]] = ..., span: _Optional[_Union[Span, _Mapping]] = ..., end: _Optional[_Union[_frames_pb2.EndFrame, _Mapping]] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[RecordFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[RecordFrame, _Mapping]]] = ...) -> None: ...

class RecordAck(_message.Message):
    __slots__ = ("durable_seq", "finalized", "archive_uri")
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    FINALIZED_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_URI_FIELD_NUMBER: _ClassVar[int]
    durable_seq: int
    finalized: bool
    archive_uri: str
    def __init__(self, durable_seq: _Optional[int] = ..., finalized: _Optional[bool] = ..., archive_uri: _Optional[str] = ...) -> None: ...
