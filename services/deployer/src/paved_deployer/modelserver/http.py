"""A small, fast HTTP/1.1 server on asyncio protocols, for the model server and the router.

Why not uvicorn + FastAPI: on the inference path every microsecond of framework
(request parsing in h11, routing, dependency injection, response models) is paid on
each request, and a model server does little else. This server parses one request
head with `bytes.split`, hands a `Request` to a handler and writes the answer; it
supports keep-alive, pipelining (answers in order), `Content-Length` and chunked
request bodies, and sets `TCP_NODELAY` on every accepted socket (uvicorn #3149).

A handler returns a `Response`, or an awaitable of one (the router awaits upstream
I/O); a synchronous handler runs inline, which is the fast path for inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_IN_FLIGHT: set[asyncio.Future[Any]] = set()


@dataclass(slots=True)
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    raw_target: bytes = b""


@dataclass(slots=True)
class Response:
    """What a handler answers; `headers` are extra headers (content-length is added)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class BadHTTPRequestError(Exception):
    """The bytes are not an HTTP/1.1 request we accept; answered 400/413/431 and closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def encode_response(response: Response, *, keep_alive: bool) -> bytes:
    """Status line, headers and body as one bytes object."""
    reason = _REASONS.get(response.status, b"Unknown")
    lines = [
        b"HTTP/1.1 %d %s" % (response.status, reason),
        b"content-type: " + response.content_type.encode(),
        b"content-length: %d" % len(response.body),
    ]
    for name, value in response.headers:
        lines.append(f"{name}: {value}".encode("latin-1"))
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body


def parse_head(head: bytes) -> tuple[str, bytes, str, dict[str, str]]:
    """Method, raw target, version and lower-cased headers of a request head."""
    lines = head.split(b"\r\n")
    try:
        method, target, version = lines[0].split(b" ", 2)
    except ValueError:
        raise BadHTTPRequestError(400, f"malformed request line {lines[0][:80]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise BadHTTPRequestError(400, f"malformed header line {line[:80]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return method.decode("latin-1"), target, version.decode("latin-1"), headers


def _chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a complete chunked body starting at `start`; None when more bytes are needed."""
    out = bytearray()
    pos = start
    while True:
        end = buffer.find(b"\r\n", pos)
        if end < 0:
            return None
        try:
            size = int(bytes(buffer[pos:end]).split(b";", 1)[0], 16)
        except ValueError:
            raise BadHTTPRequestError(400, "malformed chunk size") from None
        pos = end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            return bytes(out), trailer_end + 4
        if len(buffer) < pos + size + 2:
            return None
        out += buffer[pos : pos + size]
        if len(out) > MAX_BODY:
            raise BadHTTPRequestError(413, f"request body larger than {MAX_BODY} bytes")
        pos += size + 2


class HTTPProtocol(asyncio.Protocol):
    """One connection: parse requests, call the handler, write answers in order."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._drain()

    def _next(self) -> tuple[Request, bool] | None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise BadHTTPRequestError(431, "request head too large")
            return None
        method, target, version, headers = parse_head(bytes(buffer[:end]))
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            decoded = _chunked(buffer, start)
            if decoded is None:
                return None
            body, consumed = decoded
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise BadHTTPRequestError(400, "malformed content-length") from None
            if length < 0 or length > MAX_BODY:
                raise BadHTTPRequestError(413, f"request body of {length} bytes is not accepted")
            if len(buffer) < start + length:
                return None
            body = bytes(buffer[start : start + length])
            consumed = start + length
        del buffer[:consumed]
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        path_bytes, _, query = target.partition(b"?")
        request = Request(
            method,
            unquote(path_bytes.decode("latin-1")),
            query.decode("latin-1"),
            headers,
            body,
            target,
        )
        return request, keep_alive

    def _drain(self) -> None:
        while self.transport is not None and not self.closing:
            try:
                parsed = self._next()
            except BadHTTPRequestError as exc:
                self._write(Response(exc.status, str(exc).encode(), "text/plain"), False)
                return
            if parsed is None:
                return
            request, keep_alive = parsed
            try:
                result = self.handler(request)
            except Exception as exc:  # a handler bug must not kill the connection silently
                result = Response(500, f"internal error: {exc!r}".encode(), "text/plain")
            if inspect.isawaitable(result):
                self.busy = True
                task = asyncio.ensure_future(result)
                # The loop holds tasks weakly: without this reference a task waiting on a
                # connect can be garbage-collected mid-flight and its answer never sent.
                _IN_FLIGHT.add(task)
                task.add_done_callback(_IN_FLIGHT.discard)
                task.add_done_callback(functools.partial(self._finished, keep_alive=keep_alive))
                return
            self._write(result, keep_alive)

    def _finished(self, task: asyncio.Future[Response], *, keep_alive: bool) -> None:
        self.busy = False
        if task.cancelled():
            response = Response(503, b"cancelled", "text/plain")
        elif (exc := task.exception()) is not None:
            response = Response(500, f"internal error: {exc!r}".encode(), "text/plain")
        else:
            response = task.result()
        self._write(response, keep_alive)
        if self.buffer:
            self._drain()

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(encode_response(response, keep_alive=keep_alive))
        if not keep_alive:
            self.closing = True
            self.transport.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (faster), else asyncio's."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


async def serve(
    handler: Handler, host: str, port: int, *, sock: socket.socket | None = None
) -> asyncio.Server:
    """Start serving `handler` on host:port (or an already bound socket)."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        return await loop.create_server(lambda: HTTPProtocol(handler), sock=sock, backlog=1024)
    return await loop.create_server(
        lambda: HTTPProtocol(handler), host, port, backlog=1024, reuse_address=True
    )


def run(
    handler: Handler, host: str, port: int, *, on_start: Callable[[], Any] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT (blocking)."""
    import signal

    loop = new_event_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        server = await serve(handler, host, port)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if on_start is not None:
            on_start()
        async with server:
            await stop.wait()
            server.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
