"""Inference throughput and latency: the Paved model server vs `mlflow models serve`.

Same model (a scikit-learn LogisticRegression, pickled for Paved and saved with
`mlflow.sklearn.save_model` for MLflow), same load (N concurrent keep-alive
connections, one request in flight on each, for D seconds after a warm-up), same
resources (one server process each, one worker), one run. Prints requests/s and
p50/p99 latency of each and the ratio.

    uv run python bench/serving/bench_serving.py [--concurrency 8] [--duration 10]
        [--rows 1] [--only paved|mlflow|router]

`router` adds the Paved figures through the deployment's endpoint (the router
process that splits traffic between revisions), for the cost of that hop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def train(folder: Path) -> tuple[LogisticRegression, Path, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, 3]], dtype=float)
    y = np.repeat(np.arange(3), 200)
    x = centers[y] + rng.normal(scale=0.8, size=(600, 4))
    model = LogisticRegression(max_iter=500).fit(x, y)
    path = folder / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return model, path, x


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {timeout_s:g} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Target:
    name: str
    host: str
    port: int
    request: bytes


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def http_request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(target: Target, until: float, record: list[float], errors: list[int],
                      warmup_until: float) -> int:  # fmt: skip
    reader, writer = await asyncio.open_connection(target.host, target.port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = 0
    try:
        while True:
            started = time.perf_counter()
            if started >= until:
                return done
            writer.write(target.request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = 0
            status_ok = head.startswith(b"HTTP/1.1 200")
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            finished = time.perf_counter()
            if started >= warmup_until:
                if status_ok:
                    record.append(finished - started)
                    done += 1
                else:
                    errors.append(1)
    finally:
        writer.close()


async def load(target: Target, concurrency: int, duration_s: float, warmup_s: float) -> Result:
    start = time.perf_counter()
    warmup_until = start + warmup_s
    until = warmup_until + duration_s
    latencies: list[float] = []
    errors: list[int] = []
    counts = await asyncio.gather(*(
        _connection(target, until, latencies, errors, warmup_until) for _ in range(concurrency)
    ))  # fmt: skip
    return Result(target.name, sum(counts), duration_s, latencies, len(errors))


def check_answers(url: str, body: bytes, expected: list[int], parse: str) -> None:
    """Both servers must answer the same predictions before they are timed."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        document = json.loads(answer.read())
    got = document["outputs"][0]["data"] if parse == "oip" else document["predictions"]
    if [int(v) for v in got] != expected:
        raise SystemExit(f"{url} answered {got}, expected {expected}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--only", choices=["paved", "mlflow", "router"], action="append")
    args = parser.parse_args()
    wanted = set(args.only or ["paved", "mlflow"])
    folder = Path(tempfile.mkdtemp(prefix="paved-bench-"))
    model, model_file, x = train(folder)
    rows = x[: args.rows]
    expected = model.predict(rows).tolist()
    procs: list[subprocess.Popen[bytes]] = []
    targets: list[tuple[Target, str, bytes, str]] = []
    try:
        if wanted & {"paved", "router"}:
            from paved_shared.artifacts import sha256_file

            (folder / "signature.json").write_text(json.dumps(SIGNATURE))
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "paved_deployer.modelserver", "--name", "bench",
                 "--version", "1", "--model-file", str(model_file), "--signature-file",
                 str(folder / "signature.json"), "--digest", sha256_file(model_file),
                 "--port", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            procs.append(proc)
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", proc)
            body = json.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": list(rows.shape),
                            "datatype": "FP64",
                            "data": rows.tolist(),
                        }
                    ]
                }
            ).encode()
            path = "/v2/models/bench/infer"
            if "paved" in wanted:
                targets.append((Target("paved", "127.0.0.1", port, http_request(path, body)),
                                f"http://127.0.0.1:{port}{path}", body, "oip"))  # fmt: skip
            if "router" in wanted:
                routes = folder / "routes.json"
                routes.write_text(
                    json.dumps(
                        {
                            "generation": 1,
                            "routes": [
                                {"revision": 1, "weight": 100, "backends": [f"127.0.0.1:{port}"]}
                            ],
                        }
                    )
                )
                router_port = free_port()
                router = subprocess.Popen(
                    [sys.executable, "-m", "paved_deployer.router", "--routes", str(routes),
                     "--port", str(router_port)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
                procs.append(router)
                wait_http(f"http://127.0.0.1:{router_port}/-/paved/routes", router)
                targets.append((
                    Target("paved via router", "127.0.0.1", router_port, http_request(path, body)),
                    f"http://127.0.0.1:{router_port}{path}", body, "oip",
                ))  # fmt: skip
        if "mlflow" in wanted:
            import mlflow.sklearn

            # Explicit requirements: inferring them runs `uv export`, slow and lock-bound.
            mlflow.sklearn.save_model(
                model, str(folder / "mlflow-model"), pip_requirements=["scikit-learn"]
            )
            port = free_port()
            env = {**os.environ, "MLFLOW_DISABLE_ENV_CREATION": "true"}
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m",
                 str(folder / "mlflow-model"), "--env-manager", "local", "-h", "127.0.0.1",
                 "-p", str(port), "-w", "1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                env=env,
            )  # fmt: skip
            procs.append(proc)
            wait_http(f"http://127.0.0.1:{port}/ping", proc)
            body = json.dumps({"inputs": rows.tolist()}).encode()
            targets.append((Target("mlflow", "127.0.0.1", port, http_request("/invocations", body)),
                            f"http://127.0.0.1:{port}/invocations", body, "mlflow"))  # fmt: skip
        for _target, url, body, parse in targets:
            check_answers(url, body, expected, parse)
        results = []
        for target, *_ in targets:
            results.append(asyncio.run(load(target, args.concurrency, args.duration, args.warmup)))
    finally:
        for proc in procs:
            stop(proc)
    print(
        f"model: LogisticRegression, {args.rows} row(s)/request, {args.concurrency} "
        f"keep-alive connections, {args.duration:g} s measured after {args.warmup:g} s warm-up"
    )
    print(f"{'server':<18}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for r in results:
        print(f"{r.name:<18}{r.rps:>12.0f}{r.pct(0.50):>10.2f}{r.pct(0.99):>10.2f}{r.errors:>8}")
    by_name = {r.name: r for r in results}
    if "paved" in by_name and "mlflow" in by_name:
        paved, ml = by_name["paved"], by_name["mlflow"]
        print(f"ratio paved/mlflow: {paved.rps / ml.rps:.1f}x requests/s, "
              f"p50 {ml.pct(0.5) / paved.pct(0.5):.1f}x lower, "
              f"p99 {ml.pct(0.99) / paved.pct(0.99):.1f}x lower")  # fmt: skip
    if any(r.errors for r in results) or not all(r.requests for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
