"""The local endpoint of one deployment: a reverse proxy that splits traffic by weight.

`python -m paved_deployer.router --routes FILE --host 127.0.0.1 --port P`

The deployer writes the routes file (revisions, their weights and the replicas of
each) atomically and sends SIGHUP; the router reloads it and reports the routes and
their generation on `GET /-/paved/routes`, so the deployer publishes `ready` only
once traffic really follows the new split. Revisions are chosen by smooth weighted
round robin (nginx's algorithm: exact proportions over every window of
sum-of-weights requests, no randomness), replicas of one revision in turn. A replica
that refuses the connection is skipped for the next one (the request has not been
sent, so retrying is safe); upstream connections are kept alive and reused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paved_deployer.modelserver.http import (
    DEFAULT_MAX_BODY,
    BadHTTPRequestError,
    Limits,
    Request,
    Response,
    new_event_loop,
    parse_content_length,
    parse_header_lines,
    serve,
)

PASS_HEADERS = ("inference-header-content-length", "content-encoding")
CONTROL_PATH = "/-/paved/routes"
HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass
class Route:
    """One revision behind the endpoint."""

    revision: int
    weight: int
    backends: list[str]
    current: int = 0
    next_backend: int = 0


@dataclass
class RouteTable:
    """The weighted revisions and the smooth weighted round-robin state."""

    generation: int = 0
    routes: list[Route] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> RouteTable:
        """Read a routes file (missing: no routes)."""
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        routes = [
            Route(int(r["revision"]), int(r["weight"]), [str(b) for b in r["backends"]])
            for r in document.get("routes", [])
            if int(r["weight"]) > 0 and r["backends"]
        ]
        return cls(int(document.get("generation", 0)), routes)

    def pick(self) -> Route | None:
        """The next revision (smooth weighted round robin)."""
        if not self.routes:
            return None
        total = 0
        best: Route | None = None
        for route in self.routes:
            route.current += route.weight
            total += route.weight
            if best is None or route.current > best.current:
                best = route
        assert best is not None
        best.current -= total
        return best

    def describe(self) -> dict[str, Any]:
        """The table as JSON for the control endpoint."""
        return {
            "generation": self.generation,
            "routes": [
                {"revision": r.revision, "weight": r.weight, "backends": r.backends}
                for r in self.routes
            ],
        }


class UpstreamError(Exception):
    """A replica's answer is not a response the router accepts (it is never retried)."""


def _response_head(head: bytes, upstream: _Upstream) -> tuple[int, dict[str, str]]:
    """Status and headers of an upstream response head (strict, like request heads)."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if (
        len(parts) < 2
        or parts[0] not in (b"HTTP/1.0", b"HTTP/1.1")
        or not (len(parts[1]) == 3 and parts[1].isdigit())
    ):
        raise UpstreamError(
            f"upstream {upstream.host}:{upstream.port}: malformed status line {lines[0][:80]!r}"
        )
    return int(parts[1]), parse_header_lines(lines[1:])


class _Upstream:
    """Idle keep-alive connections to one backend."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host = host
        self.port = int(port)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle:
            reader, writer = self.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return reader, writer, False


class Router:
    """Forwards each request to a replica of the revision picked by weight."""

    def __init__(self, routes_file: Path, *, max_response: int = 4 * DEFAULT_MAX_BODY) -> None:
        self.routes_file = routes_file
        self.max_response = max_response
        self.table = RouteTable.load(routes_file)
        self.upstreams: dict[str, _Upstream] = {}
        self.served: Counter[int] = Counter()

    def reload(self) -> None:
        """Re-read the routes file (SIGHUP)."""
        self.table = RouteTable.load(self.routes_file)

    async def handle(self, request: Request) -> Response:
        """Answer the control endpoint, or proxy the request."""
        if request.path == CONTROL_PATH:
            body = {**self.table.describe(), "served": dict(self.served)}
            return Response(200, json.dumps(body).encode())
        route = self.table.pick()
        if route is None:
            detail = "this deployment has no serving revision right now"
            problem = {"type": "about:blank", "title": "Service unavailable", "status": 503,
                       "detail": detail, "error": detail}  # fmt: skip
            return Response(503, json.dumps(problem).encode(), "application/problem+json")
        head = self._head(request)
        last_error: Exception | None = None
        count = len(route.backends)
        for attempt in range(count):
            address = route.backends[(route.next_backend + attempt) % count]
            upstream = self.upstreams.get(address)
            if upstream is None:
                upstream = self.upstreams[address] = _Upstream(address)
            try:
                response = await self._forward(upstream, head, request.body)
            except (UpstreamError, BadHTTPRequestError) as exc:
                # The request was sent: never retried on another replica.
                detail = f"revision {route.revision} answered badly: {exc}"
                problem = {"type": "about:blank", "title": "Bad gateway", "status": 502,
                           "detail": detail, "error": detail}  # fmt: skip
                return Response(502, json.dumps(problem).encode(), "application/problem+json")
            except OSError as exc:
                last_error = exc
                continue
            route.next_backend = (route.next_backend + attempt + 1) % count
            self.served[route.revision] += 1
            response.headers.append(("x-paved-revision", str(route.revision)))
            return response
        detail = f"no replica of revision {route.revision} answered: {last_error!r}"
        problem = {"type": "about:blank", "title": "Bad gateway", "status": 502,
                   "detail": detail, "error": detail}  # fmt: skip
        return Response(502, json.dumps(problem).encode(), "application/problem+json")

    @staticmethod
    def _head(request: Request) -> bytes:
        lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.raw_target)]
        for name, value in request.headers.items():
            if name not in HOP_HEADERS:
                lines.append(f"{name}: {value}".encode("latin-1"))
        lines.append(b"host: paved-router")
        lines.append(b"content-length: %d" % len(request.body))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _forward(self, upstream: _Upstream, head: bytes, body: bytes) -> Response:
        for _ in range(2):
            reader, writer, reused = await upstream.connect()
            try:
                writer.write(head + body)
                status_line = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                writer.close()
                if isinstance(exc, asyncio.LimitOverrunError):
                    raise UpstreamError(
                        f"upstream {upstream.host}:{upstream.port}: response head too large"
                    ) from exc
                if reused:
                    continue  # a stale kept-alive connection: once more on a fresh one
                raise ConnectionError(f"upstream {upstream.host}:{upstream.port}: {exc!r}") from exc
            try:
                status, headers = _response_head(status_line, upstream)
                length = parse_content_length(headers.get("content-length", "0"))
                if length > self.max_response:
                    raise UpstreamError(
                        f"upstream {upstream.host}:{upstream.port} answered with a "
                        f"{length}-byte body (limit {self.max_response})"
                    )
            except (UpstreamError, BadHTTPRequestError):
                writer.close()
                raise
            try:
                data = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError) as exc:
                writer.close()
                raise ConnectionError(f"upstream {upstream.host}:{upstream.port}: {exc!r}") from exc
            if headers.get("connection", "").lower() == "close":
                writer.close()
            else:
                upstream.idle.append((reader, writer))
            extra = [(n, headers[n]) for n in PASS_HEADERS if n in headers]
            return Response(
                status, data, headers.get("content-type", "application/octet-stream"), extra
            )
        raise ConnectionError(f"upstream {upstream.host}:{upstream.port} keeps closing")


def main(argv: list[str] | None = None) -> int:
    """Serve the routes file until SIGTERM; reload it on SIGHUP."""
    parser = argparse.ArgumentParser(prog="python -m paved_deployer.router")
    parser.add_argument("--routes", required=True, type=Path, help="routes JSON file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument(
        "--max-body-bytes", type=int, default=DEFAULT_MAX_BODY, help="request body cap (413)"
    )
    args = parser.parse_args(argv)
    router = Router(args.routes)
    limits = Limits(max_body=args.max_body_bytes)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)

    async def run() -> None:
        server = await serve(router.handle, args.host, args.port, limits=limits)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, router.reload)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"routing on {args.port}: {router.table.describe()}", flush=True)
        async with server:
            await stop.wait()
            server.close()

    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(run())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
