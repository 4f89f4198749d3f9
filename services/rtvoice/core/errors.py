"""Typed failures of the voice loop.

Every failure that can reach a caller is a :class:`RealtimeError` subclass. Each maps to an
``ErrorFrame`` (``rtvoice.v1.ErrorFrame``) through :meth:`RealtimeError.to_frame`, so the caller,
the recorder's spans and the logs all see the same kind, code and ``retryable`` flag.
"""

from __future__ import annotations

from rtvoice.v1 import frames_pb2 as pb


class RealtimeError(Exception):
    """Base of all typed voice-loop failures.

    ``code`` is a machine-readable string (e.g. ``invalid_api_key``); ``retryable`` says whether the same
    request may succeed later; ``fatal`` says whether the session must end.
    """

    kind: int = pb.ERROR_KIND_INTERNAL
    default_code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.retryable = retryable
        self.fatal = fatal

    def to_frame(self) -> pb.ErrorFrame:
        """The ``ErrorFrame`` sent to the caller and to the errors sink."""
        return pb.ErrorFrame(
            kind=self.kind,  # type: ignore[arg-type]
            code=self.code,
            message=self.message,
            retryable=self.retryable,
            fatal=self.fatal,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, retryable={self.retryable})"
        )


class RealtimeAuthError(RealtimeError):
    """The provider refused the credentials (bad, expired or missing API key). Never retryable."""

    kind = pb.ERROR_KIND_AUTH
    default_code = "invalid_api_key"


class RealtimeProtocolError(RealtimeError):
    """A peer sent something the protocol does not allow (bad JSON, unknown event, wrong order)."""

    kind = pb.ERROR_KIND_PROTOCOL
    default_code = "protocol_error"


class RealtimeAudioFormatError(RealtimeError):
    """Audio bytes that do not fit the negotiated format (odd PCM16 length, wrong rate, oversized)."""

    kind = pb.ERROR_KIND_AUDIO_FORMAT
    default_code = "audio_format"


class RealtimeProviderError(RealtimeError):
    """The provider failed (server error, quota, unknown model, connection lost); see ``retryable``."""

    kind = pb.ERROR_KIND_PROVIDER
    default_code = "provider_error"


class RealtimeReadTimeout(RealtimeError):
    """A peer sent nothing within the allowed time."""

    kind = pb.ERROR_KIND_READ_TIMEOUT
    default_code = "read_timeout"

    def __init__(self, message: str, *, code: str | None = None, fatal: bool = False) -> None:
        super().__init__(message, code=code, retryable=True, fatal=fatal)


class RealtimeUnsupportedError(RealtimeError):
    """A request the provider cannot honour (e.g. temperature on OpenAI GA). Non-fatal."""

    kind = pb.ERROR_KIND_UNSUPPORTED
    default_code = "unsupported"


class RealtimeLimitError(RealtimeError):
    """A session limit was hit (frame rate, frame size, session length, idle time)."""

    kind = pb.ERROR_KIND_LIMIT
    default_code = "limit_exceeded"


class RealtimeRecordingError(RealtimeError):
    """The session's recording failed (spool disk full, write error); see docs/recording.md."""

    kind = pb.ERROR_KIND_RECORDING
    default_code = "recording_failed"


class RealtimeUnavailableError(RealtimeError):
    """A service the session needs cannot be reached (bridge down, draining, unknown agent)."""

    kind = pb.ERROR_KIND_UNAVAILABLE
    default_code = "unavailable"


ERROR_KIND_NAMES: dict[int, str] = {
    pb.ERROR_KIND_UNSPECIFIED: "unspecified",
    pb.ERROR_KIND_AUTH: "auth",
    pb.ERROR_KIND_PROTOCOL: "protocol",
    pb.ERROR_KIND_AUDIO_FORMAT: "audio_format",
    pb.ERROR_KIND_PROVIDER: "provider",
    pb.ERROR_KIND_READ_TIMEOUT: "read_timeout",
    pb.ERROR_KIND_UNSUPPORTED: "unsupported",
    pb.ERROR_KIND_LIMIT: "limit",
    pb.ERROR_KIND_INTERNAL: "internal",
    pb.ERROR_KIND_UNAVAILABLE: "unavailable",
}
ERROR_KINDS_BY_NAME: dict[str, int] = {v: k for k, v in ERROR_KIND_NAMES.items()}
