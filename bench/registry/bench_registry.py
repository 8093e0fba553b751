"""Registry benchmark: Paved's catalog beside an MLflow server, same PostgreSQL, same run.

    uv run python bench/registry/bench_registry.py                    # 100,000 versions
    uv run python bench/registry/bench_registry.py --versions 20000   # quicker
    uv run python bench/registry/bench_registry.py --bootstrap 127.0.0.1:9092 \\
        --dsn postgresql://postgres@127.0.0.1:5433/paved              # an existing stack

Both servers run as their own processes with one worker (``python -m paved_registry``
and ``mlflow server --backend-store-uri postgresql+psycopg2://...`` on a fresh database
of the same PostgreSQL cluster), and both are driven over HTTP by the same httpx client.

1. seed: N versions (over N/100 models) written straight into each store's tables by one
   INSERT ... SELECT generate_series (registration through the APIs would take hours
   for MLflow; the seed's own time is printed but not compared);
2. registration throughput: R more versions through each API
   (Paved ``POST /api/v1/models/{m}/versions``, MLflow ``POST model-versions/create``),
   C concurrent clients;
3. search latency, S requests each (p50 / p99): one model's versions, a tag filter,
   a word (Paved: full text over names, descriptions and model cards; MLflow has no
   full-text search, so ``name ILIKE '%word%'``), a state + risk tier filter (Paved
   only), and paging 100 per page through the newest versions (Paved: keyset cursor;
   MLflow: its page token).

Prints figures and the Paved/MLflow ratios; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

WORDS = [
    "churn", "fraud", "sepsis", "radiology", "triage", "forecast", "demand", "credit",
    "retention", "pricing", "anomaly", "vision", "speech", "ranking", "recommend", "genomics",
    "pathology", "oncology", "cardiology", "logistics", "inventory", "supply", "maintenance",
    "turbine", "sensor", "language", "summarise", "translate", "classifier", "regression",
    "survival", "readmission", "dosage", "adverse", "imaging", "claims", "underwriting",
    "marketing", "segment", "telemetry",
]  # fmt: skip
STATES = [
    "registered", "validating", "validated", "validation_failed", "pending_approval",
    "approved", "rejected", "deployed", "deprecated", "retired",
]  # fmt: skip
FRAMEWORKS = ["onnx", "sklearn", "safetensors", "pytorch", "xgboost"]
TIERS = ["low", "medium", "high", "critical"]
HEADERS = {"X-Paved-User": "bench", "X-Paved-User-Name": "Registry Bench"}
SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}],
}


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::text[]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def model_name(m: int) -> str:
    return f"bench-{WORDS[m % len(WORDS)]}-{m:06d}"


# --------------------------------------------------------------------------- processes


@contextlib.asynccontextmanager
async def stack(args: argparse.Namespace) -> AsyncIterator[tuple[str, str]]:
    """(bootstrap, dsn): the one given, or a fresh Kafka + PostgreSQL in a temp folder."""
    if args.bootstrap and args.dsn:
        yield args.bootstrap, args.dsn
        return
    from paved_shared.devstack import DevStack

    run_dir = Path(tempfile.mkdtemp(prefix="paved-bench-"))
    os.chmod(run_dir, 0o755)
    shared = DevStack.from_env().kafka
    shared.fetch()
    dev = DevStack.ephemeral(run_dir)
    dev.kafka.libs.symlink_to(shared.libs, target_is_directory=True)
    try:
        print("starting Kafka and PostgreSQL ...", flush=True)
        await asyncio.to_thread(dev.up)
        yield dev.kafka.bootstrap, dev.postgres.dsn
    finally:
        await asyncio.to_thread(dev.down)
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def server(name: str, cmd: list[str], env: dict[str, str], url: str, log: Path,
           timeout_s: float) -> Iterator[None]:  # fmt: skip
    """Run a server process (own session) until ``url`` answers; stop it afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} did not answer {url} within {timeout_s:.0f}s; see {log}"
                )
            time.sleep(0.5)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --------------------------------------------------------------------------- seeding


async def seed_paved(dsn: str, schema: str, versions: int, models: int) -> float:
    words, states = _array(WORDS), _array(STATES)
    frameworks, tiers = _array(FRAMEWORKS), _array(TIERS)
    start = time.perf_counter()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(
            f"""INSERT INTO models (name, description, owner_team, tags, created_via, created_by,
                created_by_name, created_at, updated_at)
            SELECT 'bench-' || w[1 + m % {len(WORDS)}] || '-' || lpad(m::text, 6, '0'),
                   'Model for ' || w[1 + (m * 7) % {len(WORDS)}] || ' and '
                   || w[1 + (m * 11) % {len(WORDS)}],
                   'team-' || (m % 20), jsonb_build_object('domain', w[1 + (m * 3) % {len(WORDS)}]),
                   'api', 'bench', 'Registry Bench', now() - interval '30 days',
                   now() - interval '30 days'
            FROM generate_series(0, {models - 1}) AS m, (SELECT {words} AS w) AS v"""
        )
        await conn.execute(
            f"""INSERT INTO model_versions (model_name, version, state, artifact_uri,
                artifact_digest, framework, signature, model_card, lineage, tags, request_id,
                request_hash, registered_by, registered_by_name, registered_event_id,
                registered_at, updated_at, description)
            SELECT 'bench-' || w[1 + (i % {models}) % {len(WORDS)}] || '-'
                   || lpad((i % {models})::text, 6, '0'),
                   i / {models} + 1, s[1 + i % {len(STATES)}],
                   's3://bench-artifacts/' || i || '.onnx',
                   'sha256:' || encode(sha256(i::text::bytea), 'hex'),
                   f[1 + i % {len(FRAMEWORKS)}], $1::jsonb,
                   jsonb_build_object(
                       'description', 'Predicts ' || w[1 + (i * 13) % {len(WORDS)}] || ' from '
                           || w[1 + (i * 17) % {len(WORDS)}] || ' signals',
                       'intended_use', 'Decision support for ' || w[1 + (i * 19) % {len(WORDS)}],
                       'limitations', 'Untested on ' || w[1 + (i * 23) % {len(WORDS)}],
                       'risk_tier', t[1 + i % 4], 'data_classification', 'internal',
                       'license', 'Apache-2.0'),
                   NULL,
                   jsonb_build_object('team', 't' || (i % 50), 'batch', (i % 7)::text),
                   'seed-' || i, 'seed', 'bench', 'Registry Bench', 'seed-event-' || i,
                   now() - make_interval(secs => {versions} - i),
                   now() - make_interval(secs => {versions} - i),
                   'Retrained on ' || w[1 + (i * 29) % {len(WORDS)}] || ' data'
            FROM generate_series(0, {versions - 1}) AS i,
                 (SELECT {words} AS w, {states} AS s, {frameworks} AS f, {tiers} AS t) AS v""",
            json.dumps(SIGNATURE),
        )
        await conn.execute("ANALYZE models; ANALYZE model_versions")
    finally:
        await conn.close()
    return time.perf_counter() - start


async def seed_mlflow(dsn: str, versions: int, models: int) -> float:
    words = _array(WORDS)
    start = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        now_ms = "(extract(epoch from now()) * 1000)::bigint"
        await conn.execute(
            f"""INSERT INTO registered_models (name, creation_time, last_updated_time, description)
            SELECT 'bench-' || w[1 + m % {len(WORDS)}] || '-' || lpad(m::text, 6, '0'),
                   {now_ms} - 2592000000, {now_ms} - 2592000000,
                   'Model for ' || w[1 + (m * 7) % {len(WORDS)}] || ' and '
                   || w[1 + (m * 11) % {len(WORDS)}]
            FROM generate_series(0, {models - 1}) AS m, (SELECT {words} AS w) AS v;
            INSERT INTO registered_model_tags (key, value, name)
            SELECT 'domain', w[1 + (m * 3) % {len(WORDS)}],
                   'bench-' || w[1 + m % {len(WORDS)}] || '-' || lpad(m::text, 6, '0')
            FROM generate_series(0, {models - 1}) AS m, (SELECT {words} AS w) AS v;
            INSERT INTO model_versions (name, version, creation_time, last_updated_time,
                description, user_id, current_stage, source, run_id, status, status_message,
                run_link, storage_location)
            SELECT 'bench-' || w[1 + (i % {models}) % {len(WORDS)}] || '-'
                   || lpad((i % {models})::text, 6, '0'),
                   i / {models} + 1, {now_ms} - ({versions} - i) * 1000,
                   {now_ms} - ({versions} - i) * 1000,
                   'Retrained on ' || w[1 + (i * 29) % {len(WORDS)}] || ' data', 'bench', 'None',
                   's3://bench-artifacts/' || i || '.onnx', '', 'READY', '', '',
                   's3://bench-artifacts/' || i || '.onnx'
            FROM generate_series(0, {versions - 1}) AS i, (SELECT {words} AS w) AS v;
            INSERT INTO model_version_tags (key, value, name, version)
            SELECT k, CASE k WHEN 'team' THEN 't' || (i % 50) ELSE (i % 7)::text END,
                   'bench-' || w[1 + (i % {models}) % {len(WORDS)}] || '-'
                   || lpad((i % {models})::text, 6, '0'),
                   i / {models} + 1
            FROM generate_series(0, {versions - 1}) AS i, (SELECT {words} AS w) AS v,
                 unnest(ARRAY['team', 'batch']) AS k;
            ANALYZE registered_models; ANALYZE model_versions; ANALYZE model_version_tags;
            ANALYZE registered_model_tags"""
        )
    finally:
        await conn.close()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- workload


async def register_many(
    url: str, count: int, concurrency: int, body_of: Callable[[int], tuple[str, dict[str, Any]]]
) -> tuple[float, int]:
    """(versions per second, failures) for ``count`` POSTs by ``concurrency`` clients."""
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            i = queue.get_nowait()
            path, body = body_of(i)
            response = await client.post(url + path, json=body, headers=HEADERS)
            if response.status_code >= 300:
                failures += 1
                if failures <= 3:
                    print(f"  registration failed: {response.status_code} {response.text[:200]}")

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return count / (time.perf_counter() - start), failures


def timed(client: httpx.Client, url: str, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {params}: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return elapsed, body


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0], ordered[0]
    p = statistics.quantiles(ordered, n=100, method="inclusive")
    return p[49], p[98]


def search_workload(paved: str, mlflow: str | None, models: int, searches: int,
                    pages: int) -> dict[str, dict[str, tuple[float, float, int]]]:  # fmt: skip
    """{query: {system: (p50 ms, p99 ms, rows of the last answer)}}."""
    results: dict[str, dict[str, tuple[float, float, int]]] = {}
    pv = f"{paved}/api/v1/versions"
    mv = f"{mlflow}/api/2.0/mlflow/model-versions/search" if mlflow else None

    def run(label: str, paved_params: Callable[[int], dict[str, Any]],
            mlflow_params: Callable[[int], dict[str, Any]] | None, key: str) -> None:  # fmt: skip
        results[label] = {}
        with httpx.Client(timeout=120, headers=HEADERS) as client:
            for system, url, params_of, items in (
                ("paved", pv, paved_params, "items"),
                ("mlflow", mv, mlflow_params, "model_versions"),
            ):
                if url is None or params_of is None:
                    continue
                timed(client, url, params_of(0))  # warm up the connection and caches
                samples: list[float] = []
                rows = 0
                for i in range(searches):
                    ms, body = timed(client, url, params_of(i + 1))
                    samples.append(ms)
                    rows = len(body.get(items, []))
                p50, p99 = percentiles(samples)
                results[label][system] = (p50, p99, rows)
        del key

    run("one model's versions",
        lambda i: {"name": model_name((i * 37) % models), "limit": 50},
        lambda i: {"filter": f"name = '{model_name((i * 37) % models)}'", "max_results": 50},
        "name")  # fmt: skip
    run("tag filter",
        lambda i: {"tag": f"team:t{i % 50}", "limit": 50},
        lambda i: {"filter": f"tags.team = 't{i % 50}'", "max_results": 50},
        "tag")  # fmt: skip
    run("word search",
        lambda i: {"q": WORDS[i % len(WORDS)], "limit": 50},
        lambda i: {"filter": f"name ILIKE '%{WORDS[i % len(WORDS)]}%'", "max_results": 50},
        "q")  # fmt: skip
    run("state + risk tier",
        lambda i: {"state": STATES[i % len(STATES)], "risk_tier": TIERS[i % 4], "limit": 50},
        None, "state")  # fmt: skip

    # Paging: `pages` pages of 100 through the newest versions, page after page.
    results[f"paging ({pages} x 100)"] = {}
    with httpx.Client(timeout=120, headers=HEADERS) as client:
        for system, url in (("paved", pv), ("mlflow", mv)):
            if url is None:
                continue
            samples = []
            rounds = max(1, searches // pages)
            last_page_ms: list[float] = []
            for _ in range(rounds):
                token: str | None = None
                for page in range(pages):
                    if system == "paved":
                        params: dict[str, Any] = {"limit": 100, "sort": "-registered_at"}
                        if token:
                            params["cursor"] = token
                        ms, body = timed(client, url, params)
                        token = body.get("next_cursor")
                    else:
                        params = {"max_results": 100, "order_by": "creation_timestamp DESC"}
                        if token:
                            params["page_token"] = token
                        ms, body = timed(client, url, params)
                        token = body.get("next_page_token")
                    samples.append(ms)
                    if page == pages - 1:
                        last_page_ms.append(ms)
                    if not token:
                        break
            p50, p99 = percentiles(samples)
            results[f"paging ({pages} x 100)"][system] = (p50, p99, len(samples))
    return results


# --------------------------------------------------------------------------- main


def _paved_body(models: int) -> Callable[[int], tuple[str, dict[str, Any]]]:
    def body(i: int) -> tuple[str, dict[str, Any]]:
        name = model_name(i % models)
        digest = "sha256:" + hashlib.sha256(f"bench-new-{i}-{uuid.uuid4()}".encode()).hexdigest()
        return f"/api/v1/models/{name}/versions", {
            "artifact_uri": f"s3://bench-artifacts/new/{i}.onnx",
            "artifact_digest": digest,
            "framework": "onnx",
            "signature": SIGNATURE,
            "model_card": {
                "description": f"Predicts {WORDS[i % len(WORDS)]} outcomes",
                "intended_use": "Benchmarking",
                "limitations": "None measured",
                "risk_tier": "low",
                "data_classification": "internal",
                "license": "MIT",
            },
            "tags": {"team": f"t{i % 50}"},
            "description": "bench registration",
        }

    return body


def _mlflow_body(models: int) -> Callable[[int], tuple[str, dict[str, Any]]]:
    def body(i: int) -> tuple[str, dict[str, Any]]:
        return "/api/2.0/mlflow/model-versions/create", {
            "name": model_name(i % models),
            "source": f"s3://bench-artifacts/new/{i}.onnx",
            "tags": [{"key": "team", "value": f"t{i % 50}"}],
            "description": "bench registration",
        }

    return body


def ratio(paved: float, mlflow: float) -> str:
    return f"{mlflow / paved:6.1f}x" if paved > 0 else "   n/a"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=100_000, help="versions to seed")
    parser.add_argument("--models", type=int, default=None, help="models (default versions/100)")
    parser.add_argument("--registrations", type=int, default=2000, help="versions via each API")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent registrants")
    parser.add_argument("--searches", type=int, default=200, help="requests per search query")
    parser.add_argument("--pages", type=int, default=10, help="pages walked per paging round")
    parser.add_argument("--skip-mlflow", action="store_true", help="Paved only")
    parser.add_argument("--bootstrap", help="Kafka bootstrap of an existing stack")
    parser.add_argument("--dsn", help="PostgreSQL DSN of an existing stack")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    models = args.models or max(1, args.versions // 100)
    logs = Path(tempfile.mkdtemp(prefix="paved-bench-registry-logs-"))

    async with stack(args) as (bootstrap, dsn):
        schema = f"bench_registry_{uuid.uuid4().hex[:8]}"
        mlflow_db = f"bench_mlflow_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'CREATE DATABASE "{mlflow_db}"')
        await admin.close()
        mlflow_dsn = dsn.rsplit("/", 1)[0] + "/" + mlflow_db
        paved_port, mlflow_port = free_port(), free_port()
        paved_url = f"http://127.0.0.1:{paved_port}"
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        paved_env = {
            "PAVED_ENVIRONMENT": "test", "PAVED_KAFKA_BOOTSTRAP": bootstrap,
            "PAVED_DATABASE_URL": dsn, "PAVED_REGISTRY_DB_SCHEMA": schema,
            "PAVED_REGISTRY_CONSUMER_GROUP": f"bench-{schema}",
            "PAVED_REGISTRY_HTTP_PORT": str(paved_port), "PAVED_LOG_LEVEL": "WARNING",
        }  # fmt: skip
        mlflow_cmd = [
            str(Path(sys.executable).with_name("mlflow")), "server",
            "--backend-store-uri", "postgresql+psycopg2" + mlflow_dsn.removeprefix("postgresql"),
            "--default-artifact-root", str(logs / "mlflow-artifacts"),
            "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        ]  # fmt: skip
        print(f"versions {args.versions:,} over {models:,} models; registrations "
              f"{args.registrations:,} x{args.concurrency}; {args.searches} requests per "
              f"query; logs in {logs}", flush=True)  # fmt: skip
        with contextlib.ExitStack() as running:
            running.enter_context(
                server("paved registry", [sys.executable, "-m", "paved_registry"], paved_env,
                       f"{paved_url}/readyz", logs / "paved.log", args.startup_timeout)
            )  # fmt: skip
            mlflow: str | None = None
            if not args.skip_mlflow:
                running.enter_context(
                    server("mlflow server", mlflow_cmd, {}, f"{mlflow_url}/health",
                           logs / "mlflow.log", args.startup_timeout)
                )  # fmt: skip
                mlflow = mlflow_url

            seed_p = await seed_paved(dsn, schema, args.versions, models)
            print(f"seeded Paved in {seed_p:.1f}s", flush=True)
            if mlflow:
                seed_m = await seed_mlflow(mlflow_dsn, args.versions, models)
                print(f"seeded MLflow in {seed_m:.1f}s", flush=True)

            reg_p, fail_p = await register_many(
                paved_url, args.registrations, args.concurrency, _paved_body(models)
            )
            reg_m, fail_m = (0.0, 0)
            if mlflow:
                reg_m, fail_m = await register_many(
                    mlflow, args.registrations, args.concurrency, _mlflow_body(models)
                )
            searched = await asyncio.to_thread(
                search_workload, paved_url, mlflow, models, args.searches, args.pages
            )

    print()
    print(f"{'registration throughput':34} {'Paved':>14} {'MLflow':>14}   MLflow/Paved time")
    print(f"{'versions/s (' + str(args.concurrency) + ' clients)':34} {reg_p:14.0f} "
          f"{(f'{reg_m:14.0f}' if mlflow else '           n/a')}   "
          f"{ratio(1 / reg_p, 1 / reg_m) if mlflow and reg_m else '   n/a'}")  # fmt: skip
    if fail_p or fail_m:
        print(f"  failed registrations: Paved {fail_p}, MLflow {fail_m}")
    print()
    print(f"{'search latency (ms)':34} {'Paved p50/p99':>14} {'MLflow p50/p99':>16}   "
          "MLflow/Paved p50, p99")  # fmt: skip
    for label, systems in searched.items():
        p = systems["paved"]
        m = systems.get("mlflow")
        mtext = f"{m[0]:7.1f}/{m[1]:<7.1f}" if m else "            n/a"
        rtext = f"{ratio(p[0], m[0])}, {ratio(p[1], m[1])}" if m else "   n/a"
        print(f"{label:34} {p[0]:7.1f}/{p[1]:<7.1f} {mtext:>16}   {rtext}")
    print()
    print(
        "rows in the last answer:",
        {k: {s: v[2] for s, v in d.items()} for k, d in searched.items()},
    )
    print("(MLflow's word search is name ILIKE only: it has no full-text search; "
          "'state + risk tier' has no MLflow equivalent.)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
