"""A small, fast HTTP/1.1 server on asyncio protocols, for the model server and the router.

Why not uvicorn + FastAPI: on the inference path every microsecond of framework
(request parsing in h11, routing, dependency injection, response models) is paid on
each request, and a model server does little else. This server parses one request
head with `bytes.split`, hands a `Request` to a handler and writes the answer; it
supports keep-alive, pipelining (answers in order), `Content-Length` and chunked
request bodies, and sets `TCP_NODELAY` on every accepted socket (uvicorn #3149).

Parsing is strict and bounded (`Limits`): request line, head, header count, chunk
size lines and the body all have caps checked before bytes are buffered; anything
malformed is answered 400 (413 body too large, 414 request line, 431 head) and the
connection closed. No input makes a parse loop go backwards or wait for unbounded data.

A handler returns a `Response`, or an awaitable of one (the router awaits upstream
I/O); a synchronous handler runs inline, which is the fast path for inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

DEFAULT_MAX_BODY = 64 * 1024 * 1024
"""Request body cap of the model server and the router (configurable per process)."""
MAX_HEAD = 32 * 1024
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_CHUNK_LINE = 1024
MAX_CHUNK_DIGITS = 16
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,%d}" % MAX_CHUNK_DIGITS)
_DIGITS = re.compile(r"[0-9]{1,19}")
_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1"})


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may be: every path either fits these or is answered 4xx and closed."""

    max_body: int = DEFAULT_MAX_BODY
    max_head: int = MAX_HEAD
    max_request_line: int = MAX_REQUEST_LINE
    max_headers: int = MAX_HEADERS


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


def parse_header_lines(lines: list[bytes], limit: int = MAX_HEADERS) -> dict[str, str]:
    """Lower-cased header names and values; a malformed line or a repeated framing header
    (content-length, transfer-encoding) raises `BadHTTPRequestError` (400/431)."""
    if len(lines) > limit:
        raise BadHTTPRequestError(431, f"{len(lines)} header lines (limit {limit})")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        # No space before the colon and a token name: anything else is a smuggling vector.
        if not sep or not _TOKEN.fullmatch(name):
            raise BadHTTPRequestError(400, f"malformed header line {line[:80]!r}")
        key = name.lower().decode("latin-1")
        text = value.strip(b" \t").decode("latin-1")
        if key in headers and key in ("content-length", "transfer-encoding", "host"):
            raise BadHTTPRequestError(400, f"repeated {key} header")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def parse_content_length(value: str) -> int:
    """A Content-Length value: decimal digits only (no sign, space or underscore)."""
    if not _DIGITS.fullmatch(value):
        raise BadHTTPRequestError(400, f"malformed content-length {value[:40]!r}")
    return int(value)


def parse_head(head: bytes, limits: Limits | None = None) -> tuple[str, bytes, str, dict[str, str]]:
    """Method, raw target, version and lower-cased headers of a request head."""
    limits = limits or Limits()
    lines = head.split(b"\r\n")
    if len(lines[0]) > limits.max_request_line:
        raise BadHTTPRequestError(414, f"request line longer than {limits.max_request_line} bytes")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise BadHTTPRequestError(400, f"malformed request line {lines[0][:80]!r}")
    method, target, raw_version = parts
    version = raw_version.decode("latin-1")
    if version not in _VERSIONS:
        raise BadHTTPRequestError(400, f"unsupported protocol version {version[:20]!r}")
    headers = parse_header_lines(lines[1:], limits.max_headers)
    return method.decode("latin-1"), target, version, headers


class ChunkedBody:
    """Incremental decoder of a chunked request body, bounded in every dimension.

    Chunk sizes are 1-16 hex digits (no sign, no `0x`), a size line is at most
    `MAX_CHUNK_LINE` bytes, the decoded body at most `max_body` bytes (checked against
    the *declared* size, before any of it is buffered) and the trailer at most
    `max_head` bytes. Each call resumes where the last one stopped: linear in the input.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.out = bytearray()
        self.pos = 0
        self.remaining: int | None = None  # bytes of the current chunk still to come
        self.in_trailer = False

    def feed(self, buffer: bytearray, start: int) -> tuple[bytes, int] | None:
        """The body and the bytes consumed from `buffer` once complete, else None."""
        pos = max(self.pos, start)
        while True:
            if self.in_trailer:
                return self._trailer(buffer, pos)
            if self.remaining is None:
                end = buffer.find(b"\r\n", pos, pos + MAX_CHUNK_LINE + 2)
                if end < 0:
                    if len(buffer) - pos > MAX_CHUNK_LINE:
                        raise BadHTTPRequestError(400, "chunk size line too long")
                    self.pos = pos
                    return None
                size_text = bytes(buffer[pos:end]).split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size_text):
                    raise BadHTTPRequestError(400, f"malformed chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                if len(self.out) + size > self.limits.max_body:
                    raise BadHTTPRequestError(
                        413, f"request body larger than {self.limits.max_body} bytes"
                    )
                pos = end + 2
                if size == 0:
                    self.in_trailer = True
                    continue
                self.remaining = size
            if len(buffer) < pos + self.remaining + 2:
                self.pos = pos
                return None
            self.out += buffer[pos : pos + self.remaining]
            pos += self.remaining
            if buffer[pos : pos + 2] != b"\r\n":
                raise BadHTTPRequestError(400, "chunk data not followed by CRLF")
            pos += 2
            self.remaining = None

    def _trailer(self, buffer: bytearray, pos: int) -> tuple[bytes, int] | None:
        # Trailer fields (ignored) end with an empty line; the empty trailer is just CRLF.
        if buffer[pos : pos + 2] == b"\r\n":
            return bytes(self.out), pos + 2
        end = buffer.find(b"\r\n\r\n", pos, pos + self.limits.max_head + 4)
        if end < 0:
            if len(buffer) - pos > self.limits.max_head:
                raise BadHTTPRequestError(431, "chunked trailer too large")
            self.pos = pos
            return None
        parse_header_lines(bytes(buffer[pos:end]).split(b"\r\n"), self.limits.max_headers)
        return bytes(self.out), end + 4


class HTTPProtocol(asyncio.Protocol):
    """One connection: parse requests, call the handler, write answers in order."""

    def __init__(self, handler: Handler, limits: Limits | None = None) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.chunked: ChunkedBody | None = None
        self.paused = False
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
        elif len(self.buffer) > self.limits.max_head + self.limits.max_body and not self.paused:
            # Pipelined bytes behind a request still in flight: stop reading, not buffering.
            self.paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def _next(self) -> tuple[Request, bool] | None:
        buffer = self.buffer
        limits = self.limits
        end = buffer.find(b"\r\n\r\n", 0, limits.max_head + 4)
        if end < 0:
            if buffer.find(b"\r\n", 0, limits.max_request_line + 2) < 0 and (
                len(buffer) > limits.max_request_line
            ):
                raise BadHTTPRequestError(414, "request line too long")
            if len(buffer) > limits.max_head:
                raise BadHTTPRequestError(431, f"request head larger than {limits.max_head} bytes")
            return None
        method, target, version, headers = parse_head(bytes(buffer[:end]), limits)
        start = end + 4
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.lower() != "chunked":
                raise BadHTTPRequestError(400, f"unsupported transfer-encoding {encoding[:40]!r}")
            if "content-length" in headers:
                raise BadHTTPRequestError(400, "both content-length and transfer-encoding")
            if self.chunked is None:
                self.chunked = ChunkedBody(limits)
            decoded = self.chunked.feed(buffer, start)
            if decoded is None:
                return None
            self.chunked = None
            body, consumed = decoded
        else:
            length = parse_content_length(headers.get("content-length", "0"))
            if length > limits.max_body:
                raise BadHTTPRequestError(
                    413, f"request body of {length} bytes is larger than {limits.max_body}"
                )
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
        if self.paused and self.transport is not None and not self.closing:
            self.paused = False
            self.transport.resume_reading()
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
    handler: Handler,
    host: str,
    port: int,
    *,
    sock: socket.socket | None = None,
    limits: Limits | None = None,
) -> asyncio.Server:
    """Start serving `handler` on host:port (or an already bound, listening socket)."""
    loop = asyncio.get_running_loop()

    def protocol() -> HTTPProtocol:
        return HTTPProtocol(handler, limits)

    if sock is not None:
        return await loop.create_server(protocol, sock=sock, backlog=1024)
    return await loop.create_server(protocol, host, port, backlog=1024, reuse_address=True)


def run(
    handler: Handler,
    host: str,
    port: int,
    *,
    on_start: Callable[[], Any] | None = None,
    sock: socket.socket | None = None,
    limits: Limits | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (blocking)."""
    import signal

    loop = new_event_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        server = await serve(handler, host, port, sock=sock, limits=limits)
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


def inherited_socket(fd: int) -> socket.socket:
    """The listening TCP socket passed in as file descriptor `fd` (e.g. into a sandbox
    that has no network of its own: the socket still accepts on the host's)."""
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"file descriptor {fd} is not a stream socket")
    sock.setblocking(False)
    return sock
