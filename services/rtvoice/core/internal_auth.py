"""Authentication between rtvoice services (ingress → bridge, bridge → recorder): a shared token.

The token lives in a file (``--internal-token-file`` or ``$RTVOICE_INTERNAL_TOKEN_FILE``; in Kubernetes a
mounted Secret, locally a per-run file written by ``rtvoice up``). Clients send it as gRPC metadata
``authorization: Bearer <token>``; servers check it with :class:`InternalAuthInterceptor` in constant time
(``hmac.compare_digest``) and answer ``UNAUTHENTICATED`` otherwise. The gRPC health service stays open
(kubelet probes and the ingress's placement watch it without a token).

Rotation: the file is re-read when it changes (:class:`~rtvoice.core.secret_file.SecretFile`). It may hold
several tokens, one per line: clients present the first, servers accept any. Rotating without refusing a
call: add the new token as a second line, wait until every pod sees it, move it to the first line, wait
again, remove the old one (docs/scaling.md).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from rtvoice.core.secret_file import SecretFile, SecretFileError

TOKEN_FILE_ENV = "RTVOICE_INTERNAL_TOKEN_FILE"
METADATA_KEY = "authorization"
_SCHEME = "Bearer "
#: Methods that never need a token: the standard gRPC health service.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)

log = logging.getLogger(__name__)


class InternalCredentials:
    """The shared token of ``path``. :meth:`metadata` is what a client attaches to a call;
    :meth:`accepts` checks what a server was given. Raises :class:`SecretFileError` (a ``ValueError``)
    from :meth:`metadata` when the file is missing or empty."""

    def __init__(self, path: str | os.PathLike[str], check_interval_s: float = 1.0) -> None:
        self.file = SecretFile(path, check_interval_s)

    @property
    def path(self) -> str:
        return str(self.file.path)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """``(("authorization", "Bearer <first token>"),)`` for a gRPC call."""
        return ((METADATA_KEY, _SCHEME + self.file.lines()[0]),)

    def accepts(self, presented: str | bytes | None) -> bool:
        """Whether ``presented`` (the ``authorization`` metadata value) carries one of the file's tokens.

        Every configured token is compared in constant time, so timing tells nothing about which one
        (or how much of one) matched. An unreadable file accepts nothing."""
        if presented is None:
            return False
        given = presented.encode() if isinstance(presented, str) else presented
        try:
            tokens = self.file.lines()
        except SecretFileError as err:
            log.error("internal token unavailable, refusing calls: %s", err)
            return False
        ok = False
        for token in tokens:
            ok |= hmac.compare_digest(given, (_SCHEME + token).encode())
        return ok


def credentials_from(path: str | None, environ: dict[str, str] | None = None) -> InternalCredentials | None:
    """Credentials of ``path``, else of ``$RTVOICE_INTERNAL_TOKEN_FILE``; ``None`` when neither is set.

    Raises :class:`SecretFileError` when the file given cannot be read or is empty (a typo must not turn
    authentication off)."""
    env = os.environ if environ is None else environ
    chosen = path or env.get(TOKEN_FILE_ENV) or None
    if chosen is None:
        return None
    creds = InternalCredentials(chosen)
    creds.metadata()  # fail now, with the file's name, rather than on the first call
    return creds


def warn_if_open(service: str, creds: InternalCredentials | None) -> None:
    """Log loudly that ``service`` accepts unauthenticated internal calls when no token is configured."""
    if creds is None:
        log.warning(
            "%s: internal authentication is OFF (no --internal-token-file or $%s): anyone who reaches "
            "this gRPC port can use it",
            service,
            TOKEN_FILE_ENV,
        )


def _abort_handler(kind: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape as ``kind`` that fails the call with UNAUTHENTICATED."""

    async def deny(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, "missing or wrong internal token (authorization: Bearer ...)"
        )

    request_streaming = bool(kind and kind.request_streaming)
    response_streaming = bool(kind and kind.response_streaming)
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


class InternalAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call without a valid ``authorization`` token (except :data:`OPEN_METHOD_PREFIXES`).

    ``on_refused(method)`` is called for each refused call (metrics)."""

    def __init__(
        self, credentials: InternalCredentials, on_refused: Callable[[str], None] | None = None
    ) -> None:
        self.credentials = credentials
        self.on_refused = on_refused

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES):
            return await continuation(handler_call_details)
        presented = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == METADATA_KEY:
                presented = value
                break
        if self.credentials.accepts(presented):
            return await continuation(handler_call_details)
        log.warning("refused an unauthenticated internal call to %s", method)
        if self.on_refused is not None:
            self.on_refused(method)
        return _abort_handler(await continuation(handler_call_details))


def server_interceptors(
    credentials: InternalCredentials | None, on_refused: Callable[[str], None] | None = None
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors a gRPC server needs: none without credentials (authentication off)."""
    return [] if credentials is None else [InternalAuthInterceptor(credentials, on_refused)]


def call_metadata(credentials: InternalCredentials | None) -> tuple[tuple[str, str], ...] | None:
    """Metadata for an outgoing internal call (``None`` without credentials)."""
    return None if credentials is None else credentials.metadata()
