"""Strict, bounded HTTP parsing of the model server and the router (in-process, loopback).

Every malformed or oversized request is answered 4xx quickly and the connection
closed; nothing loops, waits for data it will never get, or buffers without bound.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from paved_deployer.modelserver.http import Limits, Request, Response, serve
from paved_deployer.router import Router

pytestmark = pytest.mark.integration

LIMITS = Limits(max_body=64 * 1024)


def echo(request: Request) -> Response:
    return Response(200, json.dumps({"length": len(request.body)}).encode())


async def _exchange(port: int, data: bytes, timeout_s: float = 3.0) -> tuple[int, bytes, float]:
    """Send `data`, read until the server closes; (status, answer, seconds)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(1 << 20), timeout_s)
        while chunk := await asyncio.wait_for(reader.read(1 << 20), timeout_s):
            answer += chunk
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    return status, answer, time.monotonic() - started


def _routes(folder: Path, backend: str) -> Path:
    """A routes file sending all traffic to one backend."""
    routes = folder / "routes.json"
    table = {"generation": 1, "routes": [{"revision": 1, "weight": 100, "backends": [backend]}]}
    routes.write_text(json.dumps(table))
    return routes


@pytest.fixture(params=["modelserver", "router"])
async def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[int]:
    """A model-server-like handler, or a router in front of one, on a free port."""
    backend = await serve(echo, "127.0.0.1", 0, limits=LIMITS)
    backend_port = backend.sockets[0].getsockname()[1]
    servers = [backend]
    port = backend_port
    if request.param == "router":
        routes = _routes(tmp_path, f"127.0.0.1:{backend_port}")
        front = await serve(Router(routes).handle, "127.0.0.1", 0, limits=LIMITS)
        servers.append(front)
        port = front.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for server in servers:
            server.close()


HEAD = b"POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\n"
CHUNKED = HEAD + b"transfer-encoding: chunked\r\n\r\n"

CASES = {
    "negative chunk size": (CHUNKED + b"-6\r\nabcdef\r\n0\r\n\r\n", 400),
    "0x chunk size": (CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    "non-hex chunk size": (CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "signed chunk size": (CHUNKED + b"+5\r\nhello\r\n0\r\n\r\n", 400),
    "17-digit chunk size": (CHUNKED + b"1" * 17 + b"\r\n", 400),
    "chunk size line without end": (CHUNKED + b"5;" + b"x" * 2000, 400),
    "chunk data without CRLF": (CHUNKED + b"5\r\nhelloXX0\r\n\r\n", 400),
    "chunked body over the cap": (CHUNKED + b"10001\r\n" + b"a" * 100, 413),
    "many chunks over the cap": (CHUNKED + (b"1000\r\n" + b"a" * 4096 + b"\r\n") * 17, 413),
    "1 GB content-length": (HEAD + b"content-length: 1000000000\r\n\r\n", 413),
    "negative content-length": (HEAD + b"content-length: -5\r\n\r\nhello", 400),
    "underscored content-length": (HEAD + b"content-length: 1_0\r\n\r\n", 400),
    "two content-lengths": (HEAD + b"content-length: 1\r\ncontent-length: 2\r\n\r\nab", 400),
    "length and chunked": (HEAD + b"content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n", 400),
    "unknown transfer-encoding": (HEAD + b"transfer-encoding: gzip\r\n\r\n", 400),
    "space before colon": (HEAD + b"content-length : 0\r\n\r\n", 400),
    "oversized header section": (HEAD + b"x-big: " + b"a" * 40_000 + b"\r\n\r\n", 431),
    "too many headers": (HEAD + b"x-h: 1\r\n" * 101 + b"\r\n", 431),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    "request line never ends": (b"GET /" + b"a" * 9000, 414),
    "bad version": (b"GET / HTTP/9.9\r\n\r\n", 400),
    "two spaces in request line": (b"GET  / HTTP/1.1\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_malformed_or_oversized_requests_are_refused_quickly(
    endpoint: int, case: str
) -> None:
    data, expected = CASES[case]
    status, answer, seconds = await _exchange(endpoint, data)
    assert status == expected, (case, answer[:300])
    assert seconds < 2.0, f"{case}: took {seconds:.2f} s"


async def test_valid_chunked_and_length_bodies_still_work(endpoint: int) -> None:
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
    status, answer, _ = await _exchange(
        endpoint, CHUNKED.replace(b"host: x", b"host: x\r\nconnection: close") + body
    )
    assert status == 200, answer
    assert answer.endswith(b'{"length": 11}')
    exact = HEAD + b"connection: close\r\ncontent-length: 65536\r\n\r\n" + b"a" * 65536
    status, answer, _ = await _exchange(endpoint, exact)
    assert status == 200, answer[:200]
    assert answer.endswith(b'{"length": 65536}')


async def test_a_chunked_body_split_into_single_bytes_is_decoded(endpoint: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint)
    data = CHUNKED + b"3\r\nabc\r\n0\r\n\r\n"
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200"), head


async def _hostile_backend(answer: bytes) -> asyncio.Server:
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    return await asyncio.start_server(reply, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["negative length", "huge length", "bad status", "huge head"],
)
async def test_router_answers_502_to_a_hostile_replica(tmp_path: Path, answer: bytes) -> None:
    """A replica runs untrusted model code: its answers are parsed as strictly."""
    backend = await _hostile_backend(answer)
    routes = _routes(tmp_path, f"127.0.0.1:{backend.sockets[0].getsockname()[1]}")
    router = Router(routes, max_response=1024 * 1024)
    request = Request("GET", "/v2/health/ready", "", {}, b"", b"/v2/health/ready")
    call: Callable[[], Awaitable[Response]] = lambda: router.handle(request)  # noqa: E731
    try:
        response = await asyncio.wait_for(call(), 3)
    finally:
        backend.close()
    assert response.status == 502, response.body
