from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCM16: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_G711_MULAW: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_G711_ALAW: _ClassVar[AudioEncoding]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]

class ErrorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_KIND_UNSPECIFIED: _ClassVar[ErrorKind]
    ERROR_KIND_AUTH: _ClassVar[ErrorKind]
    ERROR_KIND_PROTOCOL: _ClassVar[ErrorKind]
    ERROR_KIND_AUDIO_FORMAT: _ClassVar[ErrorKind]
    ERROR_KIND_PROVIDER: _ClassVar[ErrorKind]
    ERROR_KIND_READ_TIMEOUT: _ClassVar[ErrorKind]
    ERROR_KIND_UNSUPPORTED: _ClassVar[ErrorKind]
    ERROR_KIND_LIMIT: _ClassVar[ErrorKind]
    ERROR_KIND_INTERNAL: _ClassVar[ErrorKind]
    ERROR_KIND_UNAVAILABLE: _ClassVar[ErrorKind]
    ERROR_KIND_RECORDING: _ClassVar[ErrorKind]

class EndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_REASON_UNSPECIFIED: _ClassVar[EndReason]
    END_REASON_CALLER_HANGUP: _ClassVar[EndReason]
    END_REASON_CALLER_DISCONNECTED: _ClassVar[EndReason]
    END_REASON_IDLE_TIMEOUT: _ClassVar[EndReason]
    END_REASON_MAX_DURATION: _ClassVar[EndReason]
    END_REASON_SLOW_CONSUMER: _ClassVar[EndReason]
    END_REASON_SERVER_SHUTDOWN: _ClassVar[EndReason]
    END_REASON_BRIDGE_SHUTDOWN: _ClassVar[EndReason]
    END_REASON_BRIDGE_LOST: _ClassVar[EndReason]
    END_REASON_BRIDGE_REFUSED: _ClassVar[EndReason]
    END_REASON_AGENT_UNREACHABLE: _ClassVar[EndReason]
    END_REASON_PROVIDER_ERROR: _ClassVar[EndReason]
    END_REASON_PROVIDER_CLOSED: _ClassVar[EndReason]
    END_REASON_RECORDING_FAILED: _ClassVar[EndReason]
    END_REASON_INTERNAL_ERROR: _ClassVar[EndReason]
    END_REASON_STREAM_BROKEN: _ClassVar[EndReason]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_PCM16: AudioEncoding
AUDIO_ENCODING_G711_MULAW: AudioEncoding
AUDIO_ENCODING_G711_ALAW: AudioEncoding
ROLE_UNSPECIFIED: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ERROR_KIND_UNSPECIFIED: ErrorKind
ERROR_KIND_AUTH: ErrorKind
ERROR_KIND_PROTOCOL: ErrorKind
ERROR_KIND_AUDIO_FORMAT: ErrorKind
ERROR_KIND_PROVIDER: ErrorKind
ERROR_KIND_READ_TIMEOUT: ErrorKind
ERROR_KIND_UNSUPPORTED: ErrorKind
ERROR_KIND_LIMIT: ErrorKind
ERROR_KIND_INTERNAL: ErrorKind
ERROR_KIND_UNAVAILABLE: ErrorKind
ERROR_KIND_RECORDING: ErrorKind
END_REASON_UNSPECIFIED: EndReason
END_REASON_CALLER_HANGUP: EndReason
END_REASON_CALLER_DISCONNECTED: EndReason
END_REASON_IDLE_TIMEOUT: EndReason
END_REASON_MAX_DURATION: EndReason
END_REASON_SLOW_CONSUMER: EndReason
END_REASON_SERVER_SHUTDOWN: EndReason
END_REASON_BRIDGE_SHUTDOWN: EndReason
END_REASON_BRIDGE_LOST: EndReason
END_REASON_BRIDGE_REFUSED: EndReason
END_REASON_AGENT_UNREACHABLE: EndReason
END_REASON_PROVIDER_ERROR: EndReason
END_REASON_PROVIDER_CLOSED: EndReason
END_REASON_RECORDING_FAILED: EndReason
END_REASON_INTERNAL_ERROR: EndReason
END_REASON_STREAM_BROKEN: EndReason

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ...) -> None: ...

class SessionStart(_message.Message):
    __slots__ = ("session_id", "agent_namespace", "agent_name", "input_format", "output_format", "overrides_json", "started_unix_ns", "metadata", "traceparent")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_JSON_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    agent_namespace: str
    agent_name: str
    input_format: AudioFormat
    output_format: AudioFormat
    overrides_json: str
    started_unix_ns: int
    metadata: _containers.ScalarMap[str, str]
    traceparent: str
    def __init__(self, session_id: _Optional[str] = ..., agent_namespace: _Optional[str] = ..., agent_name: _Optional[str] = ..., input_format: _Optional[_Union[AudioFormat, _Mapping]] = ..., output_format: _Optional[_Union[AudioFormat, _Mapping]] = ..., overrides_json: _Optional[str] = ..., started_unix_ns: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., traceparent: _Optional[str] = ...) -> None: ...

class SessionReady(_message.Message):
    __slots__ = ("session_id", "provider", "model", "voice")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    provider: str
    model: str
    voice: str
    def __init__(self, session_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., voice: _Optional[str] = ...) -> None: ...

class AudioFrame(_message.Message):
    __slots__ = ("data", "format", "sequence", "capture_ts_ms", "item_id", "content_index", "frames")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TS_MS_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: AudioFormat
    sequence: int
    capture_ts_ms: int
    item_id: str
    content_index: int
    frames: int
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ..., sequence: _Optional[int] = ..., capture_ts_ms: _Optional[int] = ..., item_id: _Optional[str] = ..., content_index: _Optional[int] = ..., frames: _Optional[int] = ...) -> None: ...

class TranscriptFrame(_message.Message):
    __slots__ = ("role", "item_id", "text", "final")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    role: Role
    item_id: str
    text: str
    final: bool
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., item_id: _Optional[str] = ..., text: _Optional[str] = ..., final: _Optional[bool] = ...) -> None: ...

class SpeechStarted(_message.Message):
    __slots__ = ("audio_start_ms", "item_id")
    AUDIO_START_MS_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    audio_start_ms: int
    item_id: str
    def __init__(self, audio_start_ms: _Optional[int] = ..., item_id: _Optional[str] = ...) -> None: ...

class SpeechStopped(_message.Message):
    __slots__ = ("audio_end_ms", "item_id")
    AUDIO_END_MS_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    audio_end_ms: int
    item_id: str
    def __init__(self, audio_end_ms: _Optional[int] = ..., item_id: _Optional[str] = ...) -> None: ...

class ResponseStarted(_message.Message):
    __slots__ = ("response_id",)
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    def __init__(self, response_id: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "total_tokens", "input_audio_tokens", "output_audio_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_AUDIO_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_AUDIO_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_audio_tokens: int
    output_audio_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., input_audio_tokens: _Optional[int] = ..., output_audio_tokens: _Optional[int] = ...) -> None: ...

class ResponseDone(_message.Message):
    __slots__ = ("response_id", "status", "status_reason", "usage")
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    status: str
    status_reason: str
    usage: Usage
    def __init__(self, response_id: _Optional[str] = ..., status: _Optional[str] = ..., status_reason: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class ClearAudio(_message.Message):
    __slots__ = ("item_id",)
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    def __init__(self, item_id: _Optional[str] = ...) -> None: ...

class PlaybackMark(_message.Message):
    __slots__ = ("item_id", "content_index", "played_ms")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PLAYED_MS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    content_index: int
    played_ms: int
    def __init__(self, item_id: _Optional[str] = ..., content_index: _Optional[int] = ..., played_ms: _Optional[int] = ...) -> None: ...

class InterruptFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TurnDetection(_message.Message):
    __slots__ = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms", "eagerness")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PREFIX_PADDING_MS_FIELD_NUMBER: _ClassVar[int]
    SILENCE_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    EAGERNESS_FIELD_NUMBER: _ClassVar[int]
    type: str
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    eagerness: str
    def __init__(self, type: _Optional[str] = ..., threshold: _Optional[float] = ..., prefix_padding_ms: _Optional[int] = ..., silence_duration_ms: _Optional[int] = ..., eagerness: _Optional[str] = ...) -> None: ...

class SteerFrame(_message.Message):
    __slots__ = ("voice", "instructions", "temperature", "turn_detection")
    VOICE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TURN_DETECTION_FIELD_NUMBER: _ClassVar[int]
    voice: str
    instructions: str
    temperature: float
    turn_detection: TurnDetection
    def __init__(self, voice: _Optional[str] = ..., instructions: _Optional[str] = ..., temperature: _Optional[float] = ..., turn_detection: _Optional[_Union[TurnDetection, _Mapping]] = ...) -> None: ...

class TextInput(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class EndOfTurn(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("call_id", "name", "arguments_json")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    arguments_json: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class ToolCancellation(_message.Message):
    __slots__ = ("call_ids",)
    CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    call_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, call_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ToolResult(_message.Message):
    __slots__ = ("call_id", "name", "output", "is_error", "duration_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    output: str
    is_error: bool
    duration_ms: int
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., output: _Optional[str] = ..., is_error: _Optional[bool] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class ErrorFrame(_message.Message):
    __slots__ = ("kind", "code", "message", "retryable", "fatal", "retry_after_ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    kind: ErrorKind
    code: str
    message: str
    retryable: bool
    fatal: bool
    retry_after_ms: int
    def __init__(self, kind: _Optional[_Union[ErrorKind, str]] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., fatal: _Optional[bool] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class EndFrame(_message.Message):
    __slots__ = ("reason", "detail", "agent_audio_frames_dropped")
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    AGENT_AUDIO_FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    reason: EndReason
    detail: str
    agent_audio_frames_dropped: int
    def __init__(self, reason: _Optional[_Union[EndReason, str]] = ..., detail: _Optional[str] = ..., agent_audio_frames_dropped: _Optional[int] = ...) -> None: ...

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

class ClientFrame(_message.Message):
    __slots__ = ("start", "audio", "playback_mark", "interrupt", "steer", "text", "end_of_turn", "end", "span")
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_MARK_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_FIELD_NUMBER: _ClassVar[int]
    STEER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    END_OF_TURN_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    start: SessionStart
    audio: AudioFrame
    playback_mark: PlaybackMark
    interrupt: InterruptFrame
    steer: SteerFrame
    text: TextInput
    end_of_turn: EndOfTurn
    end: EndFrame
    span: Span
    def __init__(self, start: _Optional[_Union[SessionStart, _Mapping]] = ..., audio: _Optional[_Union[AudioFrame, _Mapping]] = ..., playback_mark: _Optional[_Union[PlaybackMark, _Mapping]] = ..., interrupt: _Optional[_Union[InterruptFrame, _Mapping]] = ..., steer: _Optional[_Union[SteerFrame, _Mapping]] = ..., text: _Optional[_Union[TextInput, _Mapping]] = ..., end_of_turn: _Optional[_Union[EndOfTurn, _Mapping]] = ..., end: _Optional[_Union[EndFrame, _Mapping]] = ..., span: _Optional[_Union[Span, _Mapping]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("ready", "audio", "transcript", "speech_started", "speech_stopped", "response_started", "response_done", "clear_audio", "error", "end", "tool_call", "tool_result", "tool_cancellation")
    READY_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STOPPED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_STARTED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_DONE_FIELD_NUMBER: _ClassVar[int]
    CLEAR_AUDIO_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    ready: SessionReady
    audio: AudioFrame
    transcript: TranscriptFrame
    speech_started: SpeechStarted
    speech_stopped: SpeechStopped
    response_started: ResponseStarted
    response_done: ResponseDone
    clear_audio: ClearAudio
    error: ErrorFrame
    end: EndFrame
    tool_call: ToolCall
    tool_result: ToolResult
    tool_cancellation: ToolCancellation
    def __init__(self, ready: _Optional[_Union[SessionReady, _Mapping]] = ..., audio: _Optional[_Union[AudioFrame, _Mapping]] = ..., transcript: _Optional[_Union[TranscriptFrame, _Mapping]] = ..., speech_started: _Optional[_Union[SpeechStarted, _Mapping]] = ..., speech_stopped: _Optional[_Union[SpeechStopped, _Mapping]] = ..., response_started: _Optional[_Union[ResponseStarted, _Mapping]] = ..., response_done: _Optional[_Union[ResponseDone, _Mapping]] = ..., clear_audio: _Optional[_Union[ClearAudio, _Mapping]] = ..., error: _Optional[_Union[ErrorFrame, _Mapping]] = ..., end: _Optional[_Union[EndFrame, _Mapping]] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., tool_result: _Optional[_Union[ToolResult, _Mapping]] = ..., tool_cancellation: _Optional[_Union[ToolCancellation, _Mapping]] = ...) -> None: ...
