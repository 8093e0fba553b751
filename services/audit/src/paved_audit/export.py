"""Inspector export for one model version: a signed JSON bundle and a readable HTML report.

The bundle holds every audit record of the version (canonical bytes, exactly as sealed),
each with an RFC 6962 inclusion proof against one signed checkpoint, and that
checkpoint. ``verify_bundle`` needs nothing but the bundle and the public key: it
checks the checkpoint's Ed25519 signature, every record's inclusion proof, that every
record belongs to the version, and the bundle's own signature when the service added
one. No database, no broker, no network.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import rfc8785

from paved_audit.domain.chain import CanonicalizationError, canonicalize_value
from paved_audit.domain.checkpoint import (
    CheckpointError,
    SignedCheckpoint,
    key_id_of,
    verify_signature,
)
from paved_audit.domain.merkle import ProofError, inclusion_proof, leaf_hash, verify_inclusion
from paved_audit.ports import Signer

BUNDLE_FORMAT: Final = "paved.audit.bundle.v1"
DEAD_LETTER_TYPE: Final = "dev.paved.deadletter.recorded.v1"


class BundleError(ValueError):
    """The bundle cannot be built or does not verify; says which part and why."""


def record_model(document: dict[str, Any]) -> tuple[str | None, int | None]:
    """(model name, version) an audited envelope is about; a gap is about its original message."""
    data = document.get("data")
    if not isinstance(data, dict):
        return None, None
    if document.get("type") == DEAD_LETTER_TYPE:
        try:
            original = json.loads(base64.b64decode(str(data.get("original_value", ""))))
        except (ValueError, binascii.Error):
            return None, None
        return record_model(original) if isinstance(original, dict) else (None, None)
    name = data.get("model_name")
    version = data.get("version")
    return (
        name if isinstance(name, str) else None,
        version if isinstance(version, int) and not isinstance(version, bool) else None,
    )


def belongs_to(record: bytes, model: str, version: int | None) -> bool:
    """True when the canonical record is about ``model`` (and ``version``, when given)."""
    try:
        document = json.loads(record)
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    name, found = record_model(document)
    return name == model and (version is None or found == version)


def _canonical(document: dict[str, Any]) -> bytes:
    return rfc8785.dumps(document)


async def build_bundle(
    records: Sequence[tuple[int, bytes]],
    leaf_hashes: Sequence[bytes],
    checkpoint: SignedCheckpoint,
    *,
    model: str,
    version: int,
    signer: Signer | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The bundle of ``records`` ((sequence, canonical bytes) of one model version).

    ``leaf_hashes`` are the leaf hashes of the whole trail up to at least the
    checkpoint's size; every record must be inside the checkpoint. With a ``signer``
    the bundle also carries a signature over its own canonical JSON.
    """
    size = checkpoint.body.tree_size
    entries = []
    for sequence, record in sorted(records):
        if sequence >= size:
            raise BundleError(
                f"record {sequence} is not covered by checkpoint #{checkpoint.body.index} "
                f"(size {size}); export again after the next checkpoint"
            )
        proof = inclusion_proof(leaf_hashes, sequence, size)
        entries.append(
            {
                "sequence": sequence,
                "record": record.decode(),
                "leaf_hash": leaf_hash(record).hex(),
                "inclusion_proof": [p.hex() for p in proof],
            }
        )
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "model_name": model,
        "version": version,
        "origin": checkpoint.body.origin,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "checkpoint": checkpoint.to_json(),
        "records": entries,
    }
    if signer is not None:
        signature = await signer.sign(_canonical(bundle))
        bundle["bundle_signature"] = {
            "key_id": signer.key_id,
            "signature": base64.b64encode(signature).decode(),
        }
    return bundle


@dataclass
class BundleReport:
    """Outcome of ``verify_bundle``."""

    ok: bool
    model_name: str = ""
    version: int = 0
    records: int = 0
    checkpoint_index: int | None = None
    tree_size: int | None = None
    root_hash: str | None = None
    bundle_signed: bool = False
    problems: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines = [f"Bundle for {self.model_name} version {self.version}: {self.records} records"]
        if self.checkpoint_index is not None:
            lines.append(
                f"Checkpoint #{self.checkpoint_index}: size {self.tree_size}, root {self.root_hash}"
            )
        lines.append(
            "Bundle signature: " + ("valid" if self.bundle_signed else "absent (records and "
                                    "checkpoint verified on their own)")
        )  # fmt: skip
        lines.extend(f"INVALID: {p}" for p in self.problems)
        lines.append("bundle verified" if self.ok else "bundle NOT verified")
        return lines


def verify_bundle(bundle: Any, public_key: bytes) -> BundleReport:
    """Check a bundle with the public key alone; the report lists every problem found."""
    report = BundleReport(ok=False)
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        report.problems.append(f"not a {BUNDLE_FORMAT} document")
        return report
    report.model_name = str(bundle.get("model_name", ""))
    version = bundle.get("version")
    report.version = version if isinstance(version, int) else 0
    try:
        checkpoint = SignedCheckpoint.from_json(bundle.get("checkpoint"), "bundle")
        checkpoint.verify(public_key)
    except CheckpointError as exc:
        report.problems.append(f"checkpoint: {exc}")
        return report
    b = checkpoint.body
    report.checkpoint_index, report.tree_size, report.root_hash = b.index, b.tree_size, b.root_hash
    if bundle.get("origin") != b.origin:
        report.problems.append(f"origin {bundle.get('origin')!r} is not the checkpoint's")
    entries = bundle.get("records")
    if not isinstance(entries, list):
        report.problems.append("records is not a list")
        return report
    report.records = len(entries)
    _check_entries(entries, checkpoint, report)
    _check_bundle_signature(bundle, public_key, report)
    report.ok = not report.problems
    return report


def _check_entries(entries: list[Any], cp: SignedCheckpoint, report: BundleReport) -> None:
    root = bytes.fromhex(cp.body.root_hash)
    previous = -1
    for position, entry in enumerate(entries):
        try:
            sequence = int(entry["sequence"])
            record = str(entry["record"]).encode()
            proof = [bytes.fromhex(p) for p in entry["inclusion_proof"]]
        except (KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"record at position {position} is malformed: {exc!r}")
            continue
        where = f"record {sequence}"
        if sequence <= previous:
            report.problems.append(f"{where} is out of order or repeated")
        previous = sequence
        try:
            document = json.loads(record)
            if canonicalize_value(document) != record:
                report.problems.append(f"{where} is not in RFC 8785 canonical form")
        except (ValueError, CanonicalizationError) as exc:
            report.problems.append(f"{where} is not JSON: {exc}")
            continue
        if not belongs_to(record, report.model_name, report.version):
            report.problems.append(
                f"{where} is not about {report.model_name} version {report.version}"
            )
        try:
            verify_inclusion(sequence, cp.body.tree_size, leaf_hash(record), proof, root)
        except ProofError as exc:
            report.problems.append(f"{where}: {exc}")


def _check_bundle_signature(bundle: dict[str, Any], public_key: bytes, r: BundleReport) -> None:
    signed = bundle.get("bundle_signature")
    if signed is None:
        return
    unsigned = {k: v for k, v in bundle.items() if k != "bundle_signature"}
    try:
        signature = base64.b64decode(str(signed["signature"]), validate=True)
        key_id = str(signed["key_id"])
    except (KeyError, TypeError, binascii.Error) as exc:
        r.problems.append(f"bundle_signature is malformed: {exc!r}")
        return
    if key_id != key_id_of(public_key):
        r.problems.append(f"bundle signed by {key_id}, the trusted key is {key_id_of(public_key)}")
    elif not verify_signature(public_key, _canonical(unsigned), signature):
        r.problems.append("bundle_signature does not verify: the bundle was changed")
    else:
        r.bundle_signed = True


# -- the readable report -----------------------------------------------------------------


def _details(document: dict[str, Any]) -> list[str]:
    """The lines an inspector wants to see for one audited event."""
    data = document.get("data")
    d: dict[str, Any] = data if isinstance(data, dict) else {}
    out: list[str] = []
    for key, label in (
        ("artifact_digest", "artifact digest"),
        ("artifact_uri", "artifact"),
        ("framework", "framework"),
        ("registered_by_name", "registered by"),
        ("from_state", "from state"),
        ("to_state", "to state"),
        ("passed", "validation passed"),
        ("evidence_digest", "evidence digest"),
        ("approval_id", "approval"),
        ("risk_tier", "risk tier"),
        ("policy_version", "policy version"),
        ("auto_approved", "auto-approved"),
        ("target", "target"),
        ("status", "status"),
        ("endpoint_url", "endpoint"),
        ("requested_by", "requested by"),
        ("reason", "reason"),
    ):
        if d.get(key) not in (None, "", []):
            out.append(f"{label}: {d[key]}")
    for check in d.get("checks") or []:
        if isinstance(check, dict):
            out.append(f"check {check.get('name')}: {check.get('outcome')}")
    for sig in d.get("signatures") or []:
        if isinstance(sig, dict):
            out.append(
                f"e-signature: {sig.get('printed_name')} ({sig.get('signer_id')}), "
                f"meaning {sig.get('meaning')}, signed {sig.get('signed_at')} UTC, "
                f"reason: {sig.get('reason')}, bound to {sig.get('version_hash')}"
            )
    if document.get("type") == DEAD_LETTER_TYPE:
        out.append(
            f"GAP: {d.get('consumer_group')} could not process {d.get('source_topic')}:"
            f"{d.get('source_partition')}@{d.get('source_offset')}"
        )
    return out


def render_html(bundle: dict[str, Any], report: BundleReport) -> str:
    """A self-contained HTML page: who registered, validated, approved, deployed, and when."""
    e = html.escape
    cp = report
    rows = []
    for entry in bundle.get("records", []):
        document = json.loads(entry["record"])
        details = "<br>".join(e(x) for x in _details(document))
        rows.append(
            "<tr>"
            f"<td>{entry['sequence']}</td>"
            f"<td>{e(str(document.get('time', '')))}</td>"
            f"<td>{e(str(document.get('type', '')))}</td>"
            f"<td>{e(str(document.get('actorname', '')))}<br><small>"
            f"{e(str(document.get('actor', '')))}</small></td>"
            f"<td>{details}</td>"
            "</tr>"
        )
    verdict = "verified" if report.ok else "NOT VERIFIED: " + "; ".join(report.problems)
    title = f"Audit report: {bundle.get('model_name')} version {bundle.get('version')}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #999; padding: 4px 8px; vertical-align: top; text-align: left; }}
th {{ background: #eee; }} small {{ color: #555; }}
</style></head><body>
<h1>{e(title)}</h1>
<p>Generated {e(str(bundle.get("generated_at")))} UTC from audit trail
<code>{e(str(bundle.get("origin")))}</code>.</p>
<p>Signed checkpoint #{cp.checkpoint_index}: {cp.tree_size} records, Merkle root
<code>{e(str(cp.root_hash))}</code>. Integrity: <strong>{e(verdict)}</strong>.</p>
<p>Verify offline: <code>paved audit verify-bundle bundle.json --public-key KEY.pub.pem</code></p>
<table>
<tr><th>#</th><th>time (UTC)</th><th>event</th><th>actor</th><th>details</th></tr>
{"".join(rows)}
</table>
</body></html>
"""
