"""Validation commands: show a version's validation result and its evidence report.

    paved validation show MODEL VERSION     # from paved.validation.events.v1, then the evidence
    paved validation evidence URI [--digest sha256:...]   # any evidence report, verified

The evidence is fetched through the artifact stores (file://, s3://, gs://; endpoints
from PAVED_ARTIFACT_* like the services) and its sha256 is checked against the digest
the validator published before anything from it is shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from paved_cli.common import bootstrap, console, fail

validation_app = typer.Typer(help="Validation results and evidence.", no_args_is_help=True)

_OUTCOME_STYLE = {"passed": "green", "failed": "bold red", "error": "bold red", "skipped": "dim"}


async def _fetch(uri: str) -> bytes:
    from paved_shared.artifacts import ArtifactStoreSettings, store_for

    config = ArtifactStoreSettings().artifact_store_config()
    with tempfile.TemporaryDirectory(prefix="paved-evidence-") as folder:
        path = await store_for(uri, config=config).fetch(uri, Path(folder))
        return await asyncio.to_thread(path.read_bytes)


async def _latest_result(model: str, version: int) -> dict[str, Any] | None:
    """The newest ModelVersionValidated for (model, version) on the validation topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from paved_schemas import topics
    from paved_schemas.envelope import ContractError, parse_envelope
    from paved_schemas.events import ModelVersionValidated
    from paved_shared.kafka import kafka_auth

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap(), **kafka_auth().aiokafka(), enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, Any] | None = None
    try:
        parts = consumer.partitions_for_topic(topics.VALIDATION_EVENTS) or set()
        partitions = [TopicPartition(topics.VALIDATION_EVENTS, p) for p in sorted(parts)]
        if not partitions:
            return None
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    try:
                        env = parse_envelope(record.value or b"")
                    except ContractError:
                        continue
                    data = env.data
                    if isinstance(data, ModelVersionValidated) and (
                        data.model_name,
                        data.version,
                    ) == (model, version):
                        found = data.model_dump(mode="json")
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if not batch:
                remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return found


def _print(document: dict[str, Any], uri: str, digest: str, *, verified: bool) -> None:
    verdict = "[bold green]PASSED[/]" if document.get("passed") else "[bold red]FAILED[/]"
    console.print(
        f"{document.get('model_name')} version {document.get('version')}: {verdict}  "
        f"(validation {document.get('validation_id')}, validator "
        f"{document.get('validator_version')}, {document.get('finished_at')})"
    )
    console.print(f"artifact  {document.get('artifact_uri')}  {document.get('artifact_digest')}")
    table = Table("check", "outcome", "ms", "detail", show_lines=False)
    for check in document.get("checks", []):
        outcome = str(check.get("outcome"))
        style = _OUTCOME_STYLE.get(outcome, "")
        table.add_row(
            str(check.get("name")),
            f"[{style}]{outcome}[/]" if style else outcome,
            str(check.get("duration_ms")),
            str(check.get("detail") or ""),
        )
    console.print(table)
    console.print(f"evidence  {uri}  ({digest}, {'verified' if verified else 'not checked'})")
    if html := document.get("html_report_uri"):
        console.print(f"report    {html}")


def _verified(data: bytes, uri: str, digest: str | None) -> tuple[dict[str, Any], str]:
    seen = f"sha256:{hashlib.sha256(data).hexdigest()}"
    if digest is not None and seen != digest:
        raise fail(f"evidence {uri} has digest {seen}, but the validator published {digest}")
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        raise fail(f"evidence {uri} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise fail(f"evidence {uri} is not a JSON object")
    return document, seen


@validation_app.command("evidence")
def evidence(
    uri: Annotated[str, typer.Argument(help="Evidence JSON URI (file://, s3://, gs://).")],
    digest: Annotated[
        str | None, typer.Option(help="Expected sha256:<hex> (from the validation event).")
    ] = None,
    raw: Annotated[bool, typer.Option("--json", help="Print the JSON document.")] = False,
) -> None:
    """Fetch an evidence report, check its digest, show its checks."""
    from paved_shared.artifacts import ArtifactError

    try:
        data = asyncio.run(_fetch(uri))
    except (ArtifactError, OSError) as exc:
        raise fail(f"cannot fetch evidence {uri!r}: {exc}") from exc
    document, seen = _verified(data, uri, digest)
    if raw:
        console.print_json(data.decode())
        return
    _print(document, uri, seen, verified=digest is not None)


@validation_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
) -> None:
    """The validation result of one version (from Kafka) and its verified evidence."""
    try:
        result = asyncio.run(_latest_result(model, version))
    except OSError as exc:
        raise fail(f"cannot read the validation topic at {bootstrap()}: {exc}") from exc
    if result is None:
        raise fail(f"no validation result for {model} version {version} (yet)")
    evidence(result["evidence_uri"], digest=result["evidence_digest"], raw=False)


def register(app: typer.Typer) -> None:
    """Add `paved validation ...` to `app`."""
    app.add_typer(validation_app, name="validation")
