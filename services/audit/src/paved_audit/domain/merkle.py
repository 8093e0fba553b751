"""RFC 6962 (and RFC 9162 §2.1) Merkle tree hashes, proofs and their verification. No I/O.

- ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
  the hash of the empty tree is ``SHA-256("")`` (``e3b0c442…b855``).
- The audit trail's leaf ``i`` is the canonical record of sequence ``i`` (the same bytes
  the hash chain covers).
- ``Frontier`` keeps only the roots of the perfect subtrees (one per set bit of the
  size), so a checkpoint root is computed incrementally from the previous checkpoint.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and refuses anything off by one
bit: wrong index or size, a flipped bit, a missing, extra or reordered element, a proof
element that is not 32 bytes, swapped roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 6962 hash of the empty tree (``e3b0c442…b855``)."""


class ProofError(ValueError):
    """A proof does not verify, or its parameters are impossible; says which and why."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash (MTH) of the leaves whose hashes are given, in order."""
    if not leaf_hashes:
        return EMPTY_ROOT
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


def _subtree(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of leaves[lo:hi] (hi > lo)."""
    if hi - lo == 1:
        return leaf_hashes[lo]
    k = _split(hi - lo)
    return node_hash(_subtree(leaf_hashes, lo, lo + k), _subtree(leaf_hashes, lo + k, hi))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """RFC 6962 audit path (PATH) of leaf ``index`` in the tree of ``tree_size`` leaves."""
    if not 0 <= index < tree_size <= len(leaf_hashes):
        raise ProofError(
            f"no inclusion proof for leaf {index} in a tree of size {tree_size} "
            f"({len(leaf_hashes)} leaves known): need 0 <= index < size <= leaves"
        )
    path: list[bytes] = []
    lo, hi, m = 0, tree_size, index
    # Walk down from the root; siblings are collected top-down, returned bottom-up.
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_subtree(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree(leaf_hashes, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """RFC 6962 consistency proof (PROOF) from the tree of size ``first`` to size ``second``."""
    if not 0 <= first <= second <= len(leaf_hashes):
        raise ProofError(
            f"no consistency proof from size {first} to size {second} "
            f"({len(leaf_hashes)} leaves known): need 0 <= first <= second <= leaves"
        )
    if first in (0, second):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(_subtree(leaf_hashes, lo, hi))
            break
        k = _split(n)
        if m <= k:
            proof.append(_subtree(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree(leaf_hashes, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for leaf hash ``leaf`` at ``index`` (RFC 9162 §2.1.3.2)."""
    if index < 0 or index >= tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, tree_size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} elements, more than the path is long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} elements, fewer than the path is long")
    return r


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows leaf ``index`` is in the tree with ``root``."""
    _check_hash(root, "root")
    got = root_from_inclusion_proof(index, tree_size, leaf, proof)
    if got != root:
        raise ProofError(
            f"inclusion proof of leaf {index} in size {tree_size} gives root {got.hex()}, "
            f"not {root.hex()}"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ``ProofError`` unless the tree of size ``second`` extends the one of size ``first``."""
    if first < 0 or second < first:
        raise ProofError(f"size {first} cannot grow into size {second}")
    if first in (second, 0):
        if proof:
            raise ProofError(
                f"from size {first} to {second} the proof must be empty, got {len(proof)}"
            )
        if first == second and first_root != second_root:
            raise ProofError(
                f"two roots for size {first}: {first_root.hex()} and {second_root.hex()}"
            )
        return
    _check_hash(first_root, "first root")
    _check_hash(second_root, "second root")
    if not proof:
        raise ProofError(f"an empty proof cannot show size {first} grew into {second}")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    fr, sr = _consistency_roots(first, second, first_root, proof)
    if fr != first_root:
        raise ProofError(f"consistency proof gives old root {fr.hex()}, not {first_root.hex()}")
    if sr != second_root:
        raise ProofError(f"consistency proof gives new root {sr.hex()}, not {second_root.hex()}")


def _consistency_roots(
    first: int, second: int, first_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """(old root, new root) implied by a consistency proof (RFC 9162 §2.1.4.2, steps 2-7)."""
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof has {len(proof)} elements, too many")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof has {len(proof)} elements, too few")
    return fr, sr


@dataclass
class Frontier:
    """The roots of the perfect subtrees of a growing tree, largest (leftmost) first.

    ``size`` leaves give one peak per set bit of ``size``; appending a leaf merges equal
    peaks, and ``root()`` folds the peaks from the right, which is RFC 6962's MTH.
    """

    size: int = 0
    peaks: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self.peaks.append(leaf)
        self.size += 1
        n = self.size
        while n & 1 == 0:  # each trailing zero bit of the new size is one merge
            right = self.peaks.pop()
            self.peaks[-1] = node_hash(self.peaks[-1], right)
            n >>= 1

    def root(self) -> bytes:
        """MTH of the leaves so far."""
        if not self.peaks:
            return EMPTY_ROOT
        r = self.peaks[-1]
        for p in reversed(self.peaks[:-1]):
            r = node_hash(p, r)
        return r

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.peaks))

    def to_hex(self) -> list[str]:
        return [p.hex() for p in self.peaks]

    @classmethod
    def from_hex(cls, size: int, peaks: Sequence[str]) -> Frontier:
        """Rebuild from stored peaks; ValueError when their number does not fit ``size``."""
        if size < 0 or len(peaks) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} has {max(size, 0).bit_count()} peaks, got {len(peaks)}"
            )
        return cls(size, [bytes.fromhex(p) for p in peaks])
