"""The demo of ``make up``: one model walks the whole paved road, live.

A scientist trains a small scikit-learn model and registers it; the platform
validates it in the sandbox and asks for approval (risk tier medium); a QA approver
signs; the application developer deploys it locally, follows the rollout on Kafka,
calls the endpoint and compares the prediction with the model's own; an auditor
verifies the audit chain.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from paved_cli.sdk import PavedClient, PavedError, version_body, watch_deployments

MODEL = "iris-classifier"
SCIENTIST = ("sam.scientist", "Sam Scientist")
APPROVER = ("quinn.qa", "Quinn QA")
DEVELOPER = ("devi.developer", "Devi Developer")

SIGNATURE = {
    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
}


def _card(accuracy: float) -> dict[str, Any]:
    return {
        "description": "Iris species from sepal and petal measurements.",
        "intended_use": "Demonstration of the Paved road; not for clinical use.",
        "limitations": "Trained on 150 flowers; nothing else.",
        "risk_tier": "medium",
        "data_classification": "public",
        "license": "BSD-3-Clause",
        "metrics": {"accuracy": round(accuracy, 4)},
    }


def train(folder: Path) -> tuple[Path, Any, Any, Any]:
    """Train a logistic regression on iris (shipped with scikit-learn); pickle it."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"iris-{int(time.time())}.pkl"
    path.write_bytes(pickle.dumps(model))
    return path, model, x, y


def _client(user: tuple[str, str]) -> PavedClient:
    return PavedClient(
        os.environ.get("PAVED_REGISTRY_URL", "http://127.0.0.1:8080"),
        os.environ.get("PAVED_APPROVER_URL", "http://127.0.0.1:8081"),
        user=user[0],
        user_name=user[1],
    )


def _wait_state(
    c: PavedClient, version: int, wanted: set[str], console: Console, timeout_s: float = 180.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = None
    with console.status("waiting...") as status:
        while True:
            v = c.get_version(MODEL, version)
            state = str(v.get("state"))
            if state != last:
                console.print(
                    f"  [dim]{time.strftime('%H:%M:%S')}[/] {MODEL} v{version} → "
                    f"[bold cyan]{state}[/]"
                )
                status.update(f"{MODEL} v{version} is {state}; waiting for {'/'.join(wanted)}")
                last = state
            if state in wanted:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"{MODEL} v{version} stuck in {state!r}")
            time.sleep(0.25)


def run_demo(console: Console) -> int:
    """Run the demo; return the process exit code."""
    bootstrap = os.environ.get("PAVED_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    run_dir = Path(os.environ.get("PAVED_RUN_DIR", ".run"))
    console.print(
        Panel.fit("[bold]Paved demo[/]: register → validate → approve → deploy → predict → audit")
    )
    try:
        from paved_shared.artifacts import sha256_file

        path, model, x, y = train(run_dir / "demo-artifacts")
        digest = sha256_file(path)
        console.print(f"1. {SCIENTIST[1]} trained a model: {path.name} ({digest[:19]}…)")
        with _client(SCIENTIST) as sam:
            try:
                sam.create_model(MODEL, description="Iris species classifier", owner_team="demo")
            except PavedError as exc:
                if exc.status != 409:
                    raise
            accuracy = float(model.score(x, y))  # training accuracy: a demo, not a study
            v = sam.register_version(
                MODEL,
                version_body(
                    artifact_uri=path.resolve().as_uri(),
                    artifact_digest=digest,
                    framework="sklearn",
                    signature=SIGNATURE,
                    model_card=_card(accuracy),
                ),
            )
            version = int(v["version"])
            console.print(f"2. registered {MODEL} v{version}; the platform takes over:")
            v = _wait_state(
                sam,
                version,
                {"pending_approval", "approved", "validation_failed", "rejected"},
                console,
            )
            if v["state"] == "validation_failed":
                console.print("[red]validation failed[/]")
                return 1
        with _client(APPROVER) as quinn:
            approvals = quinn.list_approvals("pending", MODEL)
            items = approvals.get("items", approvals) if isinstance(approvals, dict) else approvals
            mine = [a for a in items if int(a.get("version", -1)) == version]
            if mine:
                result = quinn.decide(
                    str(mine[0]["approval_id"]),
                    "approve",
                    "approval",
                    "Evidence reviewed: sandbox smoke inference passed; fit for the demo.",
                )
                for sig in result.get("signatures", []):
                    console.print(
                        f"3. e-signature: [bold]{sig.get('printed_name')}[/] "
                        f"({sig.get('signer_id')}) {sig.get('signed_at')} — "
                        f"meaning: {sig.get('meaning')}"
                    )
            _wait_state(quinn, version, {"approved", "deployed"}, console)
        with _client(DEVELOPER) as devi:
            dep = devi.request_deployment(MODEL, version, "local", {"replicas": 1})
            deployment_id = str(dep["deployment_id"])
            console.print(
                f"4. {DEVELOPER[1]} requested deployment {deployment_id}; following it on Kafka:"
            )
            endpoint = asyncio.run(_follow(bootstrap, deployment_id, console))
            if endpoint is None:
                return 1
        sample = x[[0, 60, 120]]
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(sample.shape),
                    "datatype": "FP64",
                    "data": sample.tolist(),
                }
            ]
        }
        resp = httpx.post(f"{endpoint}/infer", json=body, timeout=10)
        resp.raise_for_status()
        served = resp.json()["outputs"][0]["data"]
        local = model.predict(sample).tolist()
        table = Table("flower", "served prediction", "model.predict", title="5. prediction")
        for i, (a, b) in enumerate(zip(served, local, strict=True)):
            table.add_row(str(i), str(a), str(b))
        console.print(table)
        if served != local:
            console.print("[red]served prediction differs from the model's own[/]")
            return 1
        return _verify_audit(bootstrap, console)
    except (PavedError, TimeoutError, httpx.HTTPError, OSError) as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        return 1


async def _follow(bootstrap: str, deployment_id: str, console: Console) -> str | None:
    async for env in watch_deployments(
        bootstrap, deployment_id=deployment_id, from_beginning=True, idle_timeout_s=120
    ):
        d = env.data
        console.print(
            f"  [dim]{env.time:%H:%M:%S}[/] {d.status}"
            + (f" at {d.endpoint_url}" if d.endpoint_url else "")
            + (f" — {d.reason}" if d.reason else "")
        )
        if d.status == "ready":
            return d.endpoint_url
        if d.status == "failed":
            return None
    console.print("[red]no deployment status for 120 s[/]")
    return None


def _demo_public_key() -> Path:
    """The checkpoint public key the demo pins: $PAVED_AUDIT_PUBLIC_KEY, else the one the
    local audit service wrote beside its key (a file the trail itself cannot replace)."""
    from paved_audit.adapters.file_signer import public_key_path
    from paved_audit.settings import AuditSettings

    if chosen := os.environ.get("PAVED_AUDIT_PUBLIC_KEY"):
        return Path(chosen)
    return public_key_path(AuditSettings().audit_checkpoint_key_path)


def _verify_audit(bootstrap: str, console: Console) -> int:
    from paved_audit import verify
    from paved_audit.domain.checkpoint import CheckpointError, load_public_key

    time.sleep(1.0)  # let the audit service seal the last status event
    pub = _demo_public_key()
    try:
        key = load_public_key(pub.read_text())
    except (OSError, CheckpointError) as exc:
        console.print(
            f"[bold red]cannot pin the audit checkpoint key {pub}:[/] {exc}; "
            "set PAVED_AUDIT_PUBLIC_KEY to the audit service's <key>.pub.pem"
        )
        return 1
    report = asyncio.run(verify.verify_topic(bootstrap, public_key=key))
    console.print(f"6. audit trail (checkpoint key pinned from {pub}):")
    for line in report.summary_lines():
        console.print(f"  {line}")
    if not report.ok:
        return 1
    console.print("[bold green]The model walked the whole paved road.[/]")
    return 0
