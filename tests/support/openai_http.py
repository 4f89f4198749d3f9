"""Protocol-faithful FAKES of OpenAI's HTTP audio and chat APIs, for the engine's cascade stages.

``async with openai_http_server(stt=..., chat=..., speech=...) as server`` starts one real HTTP/1.1
server on 127.0.0.1 (port 0, own thread) with the routes OpenAI documents:

- ``POST /v1/audio/transcriptions`` — multipart form (``file`` WAV, ``model``, ``response_format``,
  optional ``prompt``); answers ``{"text": ...}`` (plus ``logprobs`` when the handler gives a
  confidence). ``stt(samples_16k, form) -> (text, confidence | None)`` does the recognizing — tests
  pass a real recognizer, so what is "heard" comes from the uploaded audio itself.
- ``POST /v1/chat/completions`` — JSON body; with ``"stream": true`` the answer is
  ``text/event-stream`` ``data: {chat.completion.chunk}`` lines and ``data: [DONE]``, sent with
  chunked transfer encoding and flushed one event at a time. ``chat(body) -> list of chunk deltas``
  (see :func:`text_deltas`, :func:`tool_call_deltas`).
- ``POST /v1/audio/speech`` — JSON ``{model, input, voice, response_format: "pcm", speed}``; answers
  raw 24 kHz PCM16 (``audio/pcm``), chunked, in 100 ms pieces. ``speech(body) -> pcm bytes``.

Every request is kept in :attr:`OpenAIHttpServer.requests` (path, headers, JSON body or form fields,
``t`` = arrival and, for chat streams, ``t_end`` = when the last event was sent; ``time.monotonic``;
``aborted`` = the client closed the connection before the answer was complete; ``finished``, a
``threading.Event`` set when the handler is done with the request).
Only what the engine uses is implemented; anything else is a 404 with an OpenAI-style error body.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from rtvoice.core.audio import resample_once

SttHandler = Callable[[np.ndarray, dict[str, str]], tuple[str, float | None]]
ChatHandler = Callable[[dict[str, Any]], list[dict[str, Any]]]
SpeechHandler = Callable[[dict[str, Any]], bytes]


def text_deltas(text: str) -> list[dict[str, Any]]:
    """Chat-completion chunk deltas writing ``text`` word by word (role first, as OpenAI streams)."""
    words = text.split(" ")
    out: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    out += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
    return out


def tool_call_deltas(call_id: str, name: str, arguments: str, index: int = 0) -> list[dict[str, Any]]:
    """Chunk deltas of one streamed tool call: id + name first, then the arguments in 3 fragments."""
    third = max(1, len(arguments) // 3)
    pieces = [arguments[i : i + third] for i in range(0, len(arguments), third)]
    first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return [{"tool_calls": [first]}] + [
        {"tool_calls": [{"index": index, "function": {"arguments": p}}]} for p in pieces
    ]


@dataclass
class OpenAIHttpServer:
    """The running fake: ``base_url`` (``http://127.0.0.1:PORT/v1``) and the received requests."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def of(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]


def _wav_to_16k(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, "expected mono PCM16 WAV"
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return resample_once(samples, w.getframerate(), 16000)


def _form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """(text fields, file fields) of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        if part.get_filename():
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode()
    return fields, files


@contextlib.asynccontextmanager
async def openai_http_server(
    stt: SttHandler | None = None,
    chat: ChatHandler | None = None,
    speech: SpeechHandler | None = None,
    event_delay_s: float = 0.0,
) -> AsyncIterator[OpenAIHttpServer]:
    """Start the fake (see the module docstring); ``event_delay_s`` paces streamed events/chunks."""
    server = OpenAIHttpServer("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _start(self, status: int, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _json(self, status: int, obj: Any) -> None:
            payload = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            record: dict[str, Any] = {"path": self.path, "headers": dict(self.headers), "t": time.monotonic()}
            record["finished"] = threading.Event()
            server.requests.append(record)
            try:
                if self.path == "/v1/audio/transcriptions" and stt is not None:
                    fields, files = _form(self.headers["Content-Type"], body)
                    record["form"] = fields
                    text, confidence = stt(_wav_to_16k(files["file"]), fields)
                    answer: dict[str, Any] = {"text": text}
                    if confidence is not None:
                        answer["logprobs"] = [
                            {"token": text, "logprob": float(np.log(confidence)), "bytes": []}
                        ]
                    self._json(200, answer)
                elif self.path == "/v1/chat/completions" and chat is not None:
                    record["json"] = json.loads(body)
                    self._chat(record, chat(record["json"]))
                elif self.path == "/v1/audio/speech" and speech is not None:
                    record["json"] = json.loads(body)
                    pcm = speech(record["json"])
                    self._start(200, "audio/pcm")
                    for i in range(0, len(pcm), 4800):
                        self._chunk(pcm[i : i + 4800])
                        time.sleep(event_delay_s)
                    self._chunk(b"")
                else:
                    self._json(
                        404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}
                    )
            except (BrokenPipeError, ConnectionResetError):  # the client hung up (cancel, barge-in)
                record["aborted"] = True
            finally:
                record["finished"].set()

        def _chat(self, record: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            request = record["json"]
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": request.get("model", "")}  # fmt: skip
            finish = "tool_calls" if any("tool_calls" in d for d in deltas) else "stop"
            chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
            chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if not request.get("stream"):
                self._json(400, {"error": {"message": "this fake serves stream=true only"}})
                return
            self._start(200, "text/event-stream")
            for chunk in chunks:
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                time.sleep(event_delay_s)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
            record["t_end"] = time.monotonic()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
