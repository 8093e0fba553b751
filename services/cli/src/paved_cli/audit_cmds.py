"""Audit commands: verify, replay, prove, consistency, checkpoint, export, verify-bundle,
verify-proof. Everything but `export --source api` works from the audit topic alone.

Every command that vouches for the trail needs a pinned checkpoint public key
(``--public-key FILE`` or ``$PAVED_AUDIT_PUBLIC_KEY``), obtained out of band: a trail
checked against the key it carries itself proves only that someone signed it. Without
one they exit ``EXIT_UNPINNED`` (2) before reading anything. ``verify
--trust-embedded-key`` checks the chain against the embedded key anyway, prints a
warning, and exits ``EXIT_EMBEDDED_KEY`` (3) even when everything else is intact.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from paved_cli.common import bootstrap, console, env, err, fail

if TYPE_CHECKING:
    from paved_audit.domain.checkpoint import SignedCheckpoint
    from paved_audit.verify import TopicRead, VerifyReport

audit_app = typer.Typer(
    help="The audit trail: verify, replay, prove, export.", no_args_is_help=True
)

TopicOpt = Annotated[str, typer.Option(help="audit topic")]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="checkpoint public key to pin (PEM or base64); default $PAVED_AUDIT_PUBLIC_KEY. "
        "Required: the trail's own key proves nothing",
    ),
]
DEFAULT_TOPIC = "paved.audit.v1"
KEY_ENV = "PAVED_AUDIT_PUBLIC_KEY"
EXIT_UNPINNED = 2
"""No pinned public key: nothing was verified."""
EXIT_EMBEDDED_KEY = 3
"""verify --trust-embedded-key: intact, but only against the trail's own key."""


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise fail(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc


def _public_key(path: Path | None) -> bytes | None:
    from paved_audit.domain.checkpoint import CheckpointError, load_public_key

    chosen = path or (Path(p) if (p := os.environ.get(KEY_ENV)) else None)
    if chosen is None:
        return None
    try:
        return load_public_key(_read_text(chosen, "public key file"))
    except CheckpointError as exc:
        raise fail(f"public key file {str(chosen)!r}: {exc}") from exc


def _required_key(path: Path | None) -> bytes:
    key = _public_key(path)
    if key is None:
        raise fail("offline verification needs the public key: pass --public-key FILE")
    return key


def _pinned_key(path: Path | None, what: str = "verifying the audit trail") -> bytes:
    """The pinned key, or exit ``EXIT_UNPINNED`` saying where to get one."""
    key = _public_key(path)
    if key is None:
        raise fail(
            f"{what} needs a pinned checkpoint public key: pass --public-key FILE or set "
            f"{KEY_ENV} (the <key>.pub.pem the audit service publishes, obtained out of band; "
            "see docs/runbooks/audit-inspection.md). Checking the trail against the key it "
            "carries itself would prove nothing; nothing was verified",
            code=EXIT_UNPINNED,
        )
    return key


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(_read_text(path, what))
    except json.JSONDecodeError as exc:
        raise fail(f"{what} {str(path)!r} is not valid JSON: {exc}") from exc


def _witness(path: Path | None) -> SignedCheckpoint | None:
    if path is None:
        return None
    from paved_audit.domain.checkpoint import CheckpointError, SignedCheckpoint

    document = _load_json(path, "witness checkpoint")
    try:
        return SignedCheckpoint.from_json(document.get("signed", document), str(path))
    except (CheckpointError, AttributeError) as exc:
        raise fail(f"witness checkpoint {str(path)!r} is not a saved checkpoint: {exc}") from exc


def _print_report(lines: list[str], ok: bool, done: str) -> None:
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if not ok:
        raise typer.Exit(1)
    console.print(f"[bold green]{done}[/]")


def _read_topic(topic: str) -> TopicRead:
    from paved_audit import verify

    with console.status(f"reading {topic} from offset 0 ..."):
        try:
            return asyncio.run(verify.read_topic_records(bootstrap(), topic, timeout_s=600))
        except (ValueError, TimeoutError) as exc:
            raise fail(str(exc)) from exc


def _verified_read(topic: str, key: bytes | None) -> tuple[TopicRead, VerifyReport]:
    """Read and verify the topic; exit 1 (printing the summary) when it does not verify."""
    from paved_audit import verify

    read = _read_topic(topic)
    report = verify.verify_topic_read(read, topic, public_key=key)
    if not report.ok:
        _print_report(report.summary_lines(), False, "")
    return read, report


@audit_app.command("verify")
def audit_verify(
    source: Annotated[str, typer.Option(help="topic (the audit topic) or db")] = "topic",
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN for --source db")] = None,
    schema: Annotated[str, typer.Option(help="audit schema for --source db")] = "audit",
    topic: TopicOpt = DEFAULT_TOPIC,
    public_key: KeyOpt = None,
    witness: Annotated[
        Path | None,
        typer.Option(
            help="a checkpoint saved earlier (`paved audit checkpoint`); the trail "
            "must still hold what it signed"
        ),
    ] = None,
    trust_embedded_key: Annotated[
        bool,
        typer.Option(
            "--trust-embedded-key",
            help="no pinned key: check against the key the trail carries, warn, and exit "
            f"{EXIT_EMBEDDED_KEY} even if intact (never 0)",
        ),
    ] = False,
) -> None:
    """Verify chain, Merkle tree and checkpoint signatures against a pinned public key,
    naming the first bad record."""
    from paved_audit import verify

    key: bytes | None
    if trust_embedded_key and _public_key(public_key) is None:
        key = None
    else:
        key = _pinned_key(public_key)
    saved = _witness(witness)

    async def run() -> Any:
        if source == "topic":
            return await verify.verify_topic(
                bootstrap(), topic, public_key=key, witness=saved, timeout_s=600
            )
        if source == "db":
            from paved_shared.db import create_pool

            url = dsn or env("PAVED_DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/paved")
            pool = await create_pool(url, schema=schema)
            try:
                return await verify.verify_database(pool, public_key=key, witness=saved)
            finally:
                await pool.close()
        raise fail(f"unknown --source {source!r}; use topic or db")

    with console.status("verifying ..."):
        try:
            report = asyncio.run(run())
        except (ValueError, TimeoutError) as exc:
            raise fail(str(exc)) from exc
    if key is None:
        for line in report.summary_lines():
            console.print(line, markup=False, highlight=False)
        err.print(
            "[bold red]WARNING: NOT VERIFIED against a pinned key.[/] The checkpoints were "
            "checked only against the key the trail carries itself, which anyone who can "
            f"rewrite the trail can replace. Pin the key with --public-key or {KEY_ENV}."
        )
        raise typer.Exit(1 if not report.ok else EXIT_EMBEDDED_KEY)
    _print_report(report.summary_lines(), report.ok, "audit chain verified")


@audit_app.command("replay")
def audit_replay(
    schema: Annotated[
        str | None,
        typer.Option(help="EMPTY schema to rebuild into (default: audit_replay_<utc time>)"),
    ] = None,
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="start at the last checkpoint published before this time (UTC)"),
    ] = None,
    model: Annotated[str | None, typer.Option(help="list and prove this model's records")] = None,
    topic: TopicOpt = DEFAULT_TOPIC,
    public_key: KeyOpt = None,
) -> None:
    """Rebuild the audit store from the topic alone into an empty schema; compare the
    rebuilt root with the last signed checkpoint, byte for byte."""
    from paved_audit.replay import ReplayError, replay_topic
    from paved_shared.db import check_identifier

    name = schema or "audit_replay_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    try:
        check_identifier(name)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    url = dsn or env("PAVED_DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/paved")
    when = since.replace(tzinfo=since.tzinfo or UTC) if since is not None else None
    key = _pinned_key(public_key, "replaying the audit trail")
    with console.status(f"replaying {topic} into schema {name} ..."):
        try:
            report = asyncio.run(
                replay_topic(
                    bootstrap(), url, name, topic=topic, since=when, model=model, public_key=key,
                )
            )  # fmt: skip
        except (ReplayError, ValueError, TimeoutError) as exc:
            raise fail(str(exc)) from exc
    _print_report(report.summary_lines(), report.ok, "replay reproduces the signed root")


@audit_app.command("prove")
def audit_prove(
    sequence: Annotated[int, typer.Argument(help="sequence of the record", min=0)],
    size: Annotated[int | None, typer.Option(help="checkpoint size (default: latest)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the proof JSON here")] = None,
    topic: TopicOpt = DEFAULT_TOPIC,
    public_key: KeyOpt = None,
) -> None:
    """Inclusion proof of one record in a signed checkpoint (from the topic alone)."""
    from paved_audit.domain.merkle import ProofError, leaf_hash
    from paved_audit.proofs import covering_checkpoint, inclusion_document, verify_proof_document

    read, report = _verified_read(topic, _pinned_key(public_key, "proving inclusion"))
    valid = read.checkpoints[: report.checkpoints_valid]
    try:
        cp = covering_checkpoint(valid, sequence, size)
        leaves = [leaf_hash(r.record) for r in read.records[: cp.body.tree_size]]
        document = inclusion_document(leaves, read.records[sequence].record, sequence, cp)
        verdict = verify_proof_document(document, cp.public_key)
    except ProofError as exc:
        raise fail(str(exc)) from exc
    _emit(document, out)
    console.print(f"[bold green]{verdict}[/]")


@audit_app.command("consistency")
def audit_consistency(
    first: Annotated[int, typer.Argument(help="index of the older checkpoint", min=0)],
    second: Annotated[int, typer.Argument(help="index of the newer checkpoint", min=0)],
    out: Annotated[Path | None, typer.Option(help="write the proof JSON here")] = None,
    topic: TopicOpt = DEFAULT_TOPIC,
    public_key: KeyOpt = None,
) -> None:
    """Consistency proof between two signed checkpoints (from the topic alone)."""
    from paved_audit.domain.merkle import ProofError, leaf_hash
    from paved_audit.proofs import consistency_document, verify_proof_document

    read, report = _verified_read(topic, _pinned_key(public_key, "proving consistency"))
    valid = {c.body.index: c for c in read.checkpoints[: report.checkpoints_valid]}
    missing = [i for i in (first, second) if i not in valid]
    if missing:
        raise fail(f"no verified checkpoint #{missing[0]} (have 0..{len(valid) - 1})")
    a, b = valid[first], valid[second]
    try:
        leaves = [leaf_hash(r.record) for r in read.records[: b.body.tree_size]]
        document = consistency_document(leaves, a, b)
        verdict = verify_proof_document(document, a.public_key)
    except ProofError as exc:
        raise fail(str(exc)) from exc
    _emit(document, out)
    console.print(f"[bold green]{verdict}[/]")


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path, typer.Option(help="where to save the latest verified checkpoint")],
    topic: TopicOpt = DEFAULT_TOPIC,
    public_key: KeyOpt = None,
) -> None:
    """Save the latest verified checkpoint, to pass later as `verify --witness`."""
    _, report = _verified_read(topic, _pinned_key(public_key, "saving a verified checkpoint"))
    if report.latest_checkpoint is None:
        raise fail(f"no signed checkpoint on {topic} yet")
    _emit(report.latest_checkpoint.to_json(), out)
    b = report.latest_checkpoint.body
    console.print(f"saved checkpoint #{b.index} (size {b.tree_size}, root {b.root_hash}) to {out}")


@audit_app.command("export")
def audit_export(
    model: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[int, typer.Argument(help="version", min=1)],
    out: Annotated[Path, typer.Option(help="folder for bundle.json and report.html")] = Path("."),
    source: Annotated[
        str, typer.Option(help="topic (rebuild here) or api (the audit service signs it too)")
    ] = "topic",
    topic: TopicOpt = DEFAULT_TOPIC,
    public_key: KeyOpt = None,
) -> None:
    """Inspector export of one model version: signed JSON bundle + readable HTML report."""
    from paved_audit.export import BundleError, build_bundle, render_html, verify_bundle

    key = _pinned_key(public_key, "exporting verified evidence")
    if source == "api":
        bundle = _api_get(f"/api/v1/audit/exports/{model}/{version}")
    elif source == "topic":
        from paved_audit.domain.merkle import leaf_hash
        from paved_audit.export import belongs_to

        read, report = _verified_read(topic, key)
        cp = report.latest_checkpoint
        if cp is None:
            raise fail(f"no signed checkpoint on {topic} yet")
        size = cp.body.tree_size
        records = [(r.sequence, r.record) for r in read.records[:size]
                   if belongs_to(r.record, model, version)]  # fmt: skip
        if not records:
            raise fail(f"no audit record of {model} version {version} in the first {size} records")
        leaves = [leaf_hash(r.record) for r in read.records[:size]]
        try:
            bundle = asyncio.run(build_bundle(records, leaves, cp, model=model, version=version))
        except BundleError as exc:
            raise fail(str(exc)) from exc
    else:
        raise fail(f"unknown --source {source!r}; use topic or api")
    checked = verify_bundle(bundle, key)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n")
    (out / "report.html").write_text(render_html(bundle, checked))
    console.print(f"wrote {out / 'bundle.json'} and {out / 'report.html'}")
    _print_report(checked.summary_lines(), checked.ok, "export verified")


@audit_app.command("verify-bundle")
def audit_verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="bundle.json from `paved audit export`")],
    public_key: KeyOpt = None,
) -> None:
    """Verify an export bundle offline, with the public key alone."""
    from paved_audit.export import verify_bundle

    report = verify_bundle(_load_json(bundle, "bundle"), _required_key(public_key))
    _print_report(report.summary_lines(), report.ok, "bundle verified offline")


@audit_app.command("verify-proof")
def audit_verify_proof(
    proof: Annotated[Path, typer.Argument(help="proof JSON from `prove` or `consistency`")],
    public_key: KeyOpt = None,
) -> None:
    """Verify an inclusion or consistency proof offline, with the public key alone."""
    from paved_audit.domain.merkle import ProofError
    from paved_audit.proofs import verify_proof_document

    try:
        verdict = verify_proof_document(_load_json(proof, "proof"), _required_key(public_key))
    except ProofError as exc:
        console.print(f"[bold red]proof NOT verified:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[bold green]{verdict}[/]")


def _emit(document: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        console.print_json(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


def _api_get(path: str) -> Any:
    import httpx

    base = env("PAVED_AUDIT_URL", "http://127.0.0.1:8082")
    user = env("PAVED_USER", os.environ.get("USER", "unknown"))
    headers = {  # dev headers count only where the audit API runs in dev-headers mode
        "X-Paved-User": user,
        "X-Paved-User-Name": env("PAVED_USER_NAME", user),
        "X-Paved-Roles": env("PAVED_ROLES", "auditor"),
    }
    if token := os.environ.get("PAVED_TOKEN", "").strip():
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(base + path, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise fail(f"audit API at {base} unreachable: {exc}") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise fail(f"audit API answered {response.status_code}: {detail}")
    return response.json()


def register(app: typer.Typer) -> None:
    """Add the audit commands to `app`."""
    app.add_typer(audit_app, name="audit")
