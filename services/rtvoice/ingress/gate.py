"""The HTTP side of the ingress: the static web page, health, and the checks before a WebSocket upgrade.

``HttpGate.process_request`` is given to ``websockets.asyncio.server.serve``; it answers plain HTTP requests
(``/``, ``/static/*``, ``/healthz``, ``/v1/config``) and, for ``/v1/agents/{namespace}/{name}``, refuses an
upgrade with 503 (draining or full), 403 (Origin not allowed), 401 (no/invalid token) or 403 (token for
another agent, expired) before any WebSocket exists. Tokens are never logged.
"""

from __future__ import annotations

import email.utils
import http
import importlib.resources
import json
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from rtvoice.core.capacity import DEFAULT_RETRY_AFTER_MS, FULL_CODE, retry_after_header
from rtvoice.core.metrics import service_metrics
from rtvoice.ingress import protocol as proto
from rtvoice.ingress.auth import TokenClaims, TokenError, check_token
from rtvoice.ingress.routing import AgentRef, parse_agent_path

log = logging.getLogger("rtvoice.ingress.http")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# The page URL carries ?token=: never leak it through Referer; only same-origin scripts and sockets.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
}


def build_response(
    status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> Response:
    """A complete HTTP response (``Content-Length`` and ``Date`` included)."""
    st = http.HTTPStatus(status)
    hdrs = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
        ]
    )
    for k, v in (headers or {}).items():
        hdrs[k] = v
    return Response(st.value, st.phrase, hdrs, body)


class StaticSite:
    """The files of ``rtvoice/ingress/web`` loaded once: ``/`` is ``index.html``, others ``/static/NAME``."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        root = importlib.resources.files("rtvoice.ingress") / "web"
        for entry in root.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if entry.is_file() and suffix in CONTENT_TYPES:
                self.files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])

    def get(self, path: str) -> Response | None:
        """The response for ``path`` or ``None`` when it is not a page path."""
        if path in ("/", "/index.html"):
            name = "index.html"
        elif path.startswith("/static/"):
            name = path[len("/static/") :]
        else:
            return None
        found = self.files.get(name)
        if found is None:
            return build_response(404, b"not found\n", "text/plain; charset=utf-8")
        return build_response(200, found[0], found[1], PAGE_HEADERS)


@dataclass(slots=True)
class Admission:
    """What the gate learned about an accepted upgrade: the agent and the token claims (``None`` with
    ``--no-auth``)."""

    agent: AgentRef
    claims: TokenClaims | None
    origin: str
    user_agent: str


@dataclass(slots=True)
class GateConfig:
    """``secret`` is required unless ``no_auth``; ``allowed_origins`` empty = same-origin only (requests
    without an ``Origin`` header, i.e. non-browser clients, are allowed)."""

    secret: bytes | None
    no_auth: bool = False
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    default_agent: str = "default/assistant"


#: URL schemes of an origin and the scheme whose default port they share (RFC 6454 compares the scheme).
_ORIGIN_SCHEMES = {"http": ("http", 80), "https": ("https", 443), "ws": ("http", 80), "wss": ("https", 443)}

#: An origin as compared: (scheme, lower-case host, port), ``ws``/``wss`` folded into ``http``/``https``.
OriginKey = tuple[str, str, int]


def origin_key(url: str) -> OriginKey | None:
    """``(scheme, host, port)`` of an Origin header or origin URL, the default port filled in
    (``https://App.example.com`` → ``("https", "app.example.com", 443)``); ``None`` when it is not an
    http(s)/ws(s) origin with a host (``null``, ``file://``, a bad port)."""
    try:
        parts = urlsplit(url.strip())
        scheme, default_port = _ORIGIN_SCHEMES[parts.scheme.lower()]
        port = parts.port
    except (KeyError, ValueError):
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else default_port


def request_origin(host: str | None, forwarded_proto: str | None) -> OriginKey | None:
    """The origin the request was sent to: its ``Host`` header and the scheme the caller used —
    ``X-Forwarded-Proto`` (first value) when a TLS-terminating proxy sets it, else ``http`` (the ingress
    itself serves plain HTTP). ``None`` without a usable ``Host``."""
    if not host:
        return None
    scheme = (forwarded_proto or "http").split(",")[0].strip().lower() or "http"
    return origin_key(f"{scheme}://{host}")


def origin_allowed(
    origin: str | None, host: str | None, allowed: frozenset[str], forwarded_proto: str | None = None
) -> bool:
    """Browser Origin check on scheme, host and port (:func:`origin_key`): in the allow-list (``*`` = any),
    else the same origin as the request (:func:`request_origin`). No ``Origin`` header (a non-browser
    client) is allowed; an opaque one (``null``) only with ``*``."""
    if origin is None:
        return True
    if "*" in allowed:
        return True
    key = origin_key(origin)
    if key is None:
        return False
    if allowed:
        return key in {origin_key(entry) for entry in allowed}
    return key == request_origin(host, forwarded_proto)


def bearer_token(request: Request, query: str) -> str | None:
    """The caller token from ``Authorization: Bearer`` or the ``token`` query parameter."""
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    values = parse_qs(query).get("token")
    return values[0] if values else None


class HttpGate:
    """``process_request`` for the ingress. ``accepting()`` says whether new sessions are taken (False while
    draining or full); :meth:`admit` pops the :class:`Admission` stored for a connection."""

    def __init__(
        self,
        config: GateConfig,
        accepting: Callable[[], str | None],
        agent_refusal: Callable[[AgentRef], str | None] = lambda _agent: None,
    ) -> None:
        if config.secret is None and not config.no_auth:
            raise ValueError("an auth secret is required unless auth is disabled (--no-auth)")
        self.config = config
        self.site = StaticSite()
        self._refusal = accepting
        self._agent_refusal = agent_refusal
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, Admission] = weakref.WeakKeyDictionary()

    def admit(self, connection: ServerConnection) -> Admission | None:
        return self._admitted.pop(connection, None)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        page = self.site.get(path)
        if page is not None:
            return page
        if path == "/favicon.ico":
            return build_response(204, b"", "image/x-icon", {"Cache-Control": "max-age=86400"})
        if path == "/healthz":
            refusal = self._refusal()
            return build_response(
                503 if refusal == "draining" else 200,
                f"{refusal or 'ok'}\n".encode(),
                "text/plain; charset=utf-8",
            )
        if path == "/v1/config":
            body = json.dumps(
                {
                    "protocol": proto.PROTOCOL_VERSION,
                    "default_agent": self.config.default_agent,
                    "auth": not self.config.no_auth,
                    "formats": list(proto.CALLER_FORMATS),
                }
            ).encode()
            return build_response(200, body, "application/json", {"Cache-Control": "no-cache"})
        if path == "/v1/token/check":
            return self._token_check(request, query)
        agent = parse_agent_path(path)
        if agent is None:
            return build_response(404, b"not found\n", "text/plain; charset=utf-8")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return build_response(
                426,
                b"this is the caller WebSocket endpoint (protocol v1); open / for the web page\n",
                "text/plain; charset=utf-8",
                {"Upgrade": "websocket"},
            )
        return self._check_upgrade(connection, request, agent, query)

    def _token_check(self, request: Request, query: str) -> Response:
        """``GET /v1/token/check?agent=NS/NAME&token=T``: why a session would be refused, for the web page
        (browsers cannot see the HTTP status of a refused WebSocket upgrade). JSON {ok, code, message}."""
        agent = parse_agent_path("/v1/agents/" + (parse_qs(query).get("agent") or [""])[0])
        status, body = 200, {"ok": True, "code": "ok", "message": "the token is valid for this agent"}
        refusal = self._refusal()
        if agent is None:
            status, body = (
                404,
                {"ok": False, "code": "unknown_agent", "message": "the agent name is not valid"},
            )
        elif refusal is not None:
            status, body = (
                503,
                {"ok": False, "code": refusal, "message": "the server is not taking new calls"},
            )
        elif not self.config.no_auth:
            assert self.config.secret is not None
            try:
                check_token(self.config.secret, bearer_token(request, query), agent.namespace, agent.name)
            except TokenError as err:
                status, body = err.status, {"ok": False, "code": err.code, "message": err.message}
        return build_response(
            status, json.dumps(body).encode(), "application/json", {"Cache-Control": "no-store"}
        )

    def _check_upgrade(
        self, connection: ServerConnection, request: Request, agent: AgentRef, query: str
    ) -> Response | None:
        refusal = self._refusal() or self._agent_refusal(agent)
        if refusal is not None:
            retry_after = retry_after_header(DEFAULT_RETRY_AFTER_MS) if refusal == FULL_CODE else "1"
            return self._refuse(
                connection,
                agent,
                503,
                refusal,
                f"the ingress is not accepting new sessions ({refusal}); retry shortly",
                {"Retry-After": retry_after},
            )
        origin = request.headers.get("Origin")
        if not origin_allowed(
            origin,
            request.headers.get("Host"),
            self.config.allowed_origins,
            request.headers.get("X-Forwarded-Proto"),
        ):
            return self._refuse(
                connection, agent, 403, "origin_not_allowed", "this Origin may not open sessions"
            )
        claims = None
        if not self.config.no_auth:
            assert self.config.secret is not None
            try:
                claims = check_token(
                    self.config.secret, bearer_token(request, query), agent.namespace, agent.name
                )
            except TokenError as err:
                extra = {"WWW-Authenticate": 'Bearer realm="rtvoice"'} if err.status == 401 else None
                return self._refuse(connection, agent, err.status, err.code, err.message, extra)
        self._admitted[connection] = Admission(
            agent, claims, origin or "", request.headers.get("User-Agent", "")[:256]
        )
        return None

    def _refuse(
        self,
        connection: ServerConnection,
        agent: AgentRef,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        log.info("refused a session for agent %s: HTTP %d %s", agent, status, code)
        service_metrics("ingress").refused(code)
        response = connection.respond(status, f"{code}: {message}\n")
        for k, v in (headers or {}).items():
            response.headers[k] = v
        return response
