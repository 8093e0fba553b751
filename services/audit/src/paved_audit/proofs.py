"""Inclusion and consistency proofs as self-contained JSON documents.

A proof document carries the signed checkpoint(s) it is against, so it verifies
offline with the public key alone (``verify_proof_document``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from paved_audit.domain.checkpoint import CheckpointError, SignedCheckpoint
from paved_audit.domain.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

INCLUSION: Final = "paved.audit.inclusion.v1"
CONSISTENCY: Final = "paved.audit.consistency.v1"


def covering_checkpoint(
    checkpoints: Sequence[SignedCheckpoint], sequence: int, tree_size: int | None = None
) -> SignedCheckpoint:
    """The checkpoint of size ``tree_size`` (default: the latest), which must cover ``sequence``."""
    if not checkpoints:
        raise ProofError("no signed checkpoint yet: nothing to prove against")
    if tree_size is None:
        cp = checkpoints[-1]
    else:
        found = [c for c in checkpoints if c.body.tree_size == tree_size]
        if not found:
            sizes = ", ".join(str(c.body.tree_size) for c in checkpoints[-10:])
            raise ProofError(f"no signed checkpoint of size {tree_size} (latest sizes: {sizes})")
        cp = found[0]
    if sequence >= cp.body.tree_size:
        raise ProofError(
            f"record {sequence} is not covered by checkpoint #{cp.body.index} "
            f"(size {cp.body.tree_size}); wait for the next checkpoint"
        )
    return cp


def inclusion_document(
    leaf_hashes: Sequence[bytes], record: bytes, sequence: int, checkpoint: SignedCheckpoint
) -> dict[str, Any]:
    """Proof that ``record`` is leaf ``sequence`` of ``checkpoint``'s tree (self-checked)."""
    size = checkpoint.body.tree_size
    proof = inclusion_proof(leaf_hashes, sequence, size)
    verify_inclusion(
        sequence, size, leaf_hash(record), proof, bytes.fromhex(checkpoint.body.root_hash)
    )
    return {
        "format": INCLUSION,
        "sequence": sequence,
        "tree_size": size,
        "record": record.decode(),
        "leaf_hash": leaf_hash(record).hex(),
        "proof": [p.hex() for p in proof],
        "checkpoint": checkpoint.to_json(),
    }


def consistency_document(
    leaf_hashes: Sequence[bytes], first: SignedCheckpoint, second: SignedCheckpoint
) -> dict[str, Any]:
    """Proof that ``second``'s tree extends ``first``'s (self-checked)."""
    a, b = first.body, second.body
    if a.tree_size > b.tree_size:
        raise ProofError(
            f"checkpoint #{a.index} (size {a.tree_size}) is larger than #{b.index} "
            f"(size {b.tree_size}); give the older one first"
        )
    proof = consistency_proof(leaf_hashes, a.tree_size, b.tree_size)
    verify_consistency(
        a.tree_size, b.tree_size, bytes.fromhex(a.root_hash), bytes.fromhex(b.root_hash), proof
    )
    return {
        "format": CONSISTENCY,
        "first_size": a.tree_size,
        "second_size": b.tree_size,
        "proof": [p.hex() for p in proof],
        "first_checkpoint": first.to_json(),
        "second_checkpoint": second.to_json(),
    }


def verify_proof_document(document: Any, public_key: bytes) -> str:
    """Check a proof document offline; return a one-line verdict, raise ``ProofError``."""
    if not isinstance(document, dict):
        raise ProofError("a proof document is a JSON object")
    try:
        if document.get("format") == INCLUSION:
            cp = SignedCheckpoint.from_json(document["checkpoint"], "proof")
            cp.verify(public_key)
            record = str(document["record"]).encode()
            sequence = int(document["sequence"])
            if int(document["tree_size"]) != cp.body.tree_size:
                raise ProofError("tree_size differs from the signed checkpoint's")
            proof = [bytes.fromhex(p) for p in document["proof"]]
            root = bytes.fromhex(cp.body.root_hash)
            verify_inclusion(sequence, cp.body.tree_size, leaf_hash(record), proof, root)
            return (
                f"record {sequence} is included in signed checkpoint #{cp.body.index} "
                f"(size {cp.body.tree_size}, root {cp.body.root_hash})"
            )
        if document.get("format") == CONSISTENCY:
            first = SignedCheckpoint.from_json(document["first_checkpoint"], "proof")
            second = SignedCheckpoint.from_json(document["second_checkpoint"], "proof")
            first.verify(public_key)
            second.verify(public_key)
            proof = [bytes.fromhex(p) for p in document["proof"]]
            a, b = first.body, second.body
            verify_consistency(
                a.tree_size, b.tree_size, bytes.fromhex(a.root_hash),
                bytes.fromhex(b.root_hash), proof,
            )  # fmt: skip
            return (
                f"signed checkpoint #{b.index} (size {b.tree_size}) extends #{a.index} "
                f"(size {a.tree_size}): nothing before it was changed"
            )
    except CheckpointError as exc:
        raise ProofError(str(exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProofError):
            raise
        raise ProofError(f"proof document is malformed: {exc!r}") from exc
    raise ProofError(f"unknown proof format {document.get('format')!r}")
