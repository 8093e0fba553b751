"""RFC 6962 Merkle trees: the published test vectors, and every corrupted proof rejected.

Vectors: the 8-leaf tree used by Certificate Transparency and transparency-dev/merkle
(leaves "", 00, 10, 2021, 3031, 40414243, 5051..57, 6061..6f)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from paved_audit.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

pytestmark = pytest.mark.unit

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
H = bytes.fromhex
# (leaf index, tree size, audit path)
INCLUSION = [
    (0, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]  # fmt: skip
# (first size, second size, proof)
CONSISTENCY = [
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]  # fmt: skip
SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")
LEAF_HASHES = [leaf_hash(d) for d in LEAVES]


def test_empty_tree_hash_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_of([]) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT


def test_domain_separated_leaf_and_node_hashes() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert leaf_hash(b"") == ROOTS[0]  # a one-leaf tree's root is its leaf hash


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_vectors(size: int) -> None:
    assert root_of(LEAF_HASHES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_vectors_and_verify(
    index: int, size: int, path: list[bytes]
) -> None:
    assert inclusion_proof(LEAF_HASHES, index, size) == path
    verify_inclusion(index, size, LEAF_HASHES[index], path, ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_vectors_and_verify(
    first: int, second: int, proof: list[bytes]
) -> None:
    assert consistency_proof(LEAF_HASHES, first, second) == proof
    verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


def _flip(proof: list[bytes], i: int, mask: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ mask]) + out[i][1:]
    return out


def _inclusion_corruptions(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> dict[str, tuple[int, int, bytes, list[bytes], bytes]]:
    cases = {
        "index - 1": (index - 1, size, leaf, proof, root),
        "index + 1": (index + 1, size, leaf, proof, root),
        "index ^ 2": (index ^ 2, size, leaf, proof, root),
        "size * 2": (index, size * 2, leaf, proof, root),
        "size / 2": (index, size // 2, leaf, proof, root),
        "wrong leaf": (index, size, b"WrongLeaf", proof, root),
        "wrong leaf hash": (index, size, leaf_hash(b"x"), proof, root),
        "empty root": (index, size, leaf, proof, EMPTY_ROOT),
        "random root": (index, size, leaf, proof, SOME_HASH),
        "trailing garbage": (index, size, leaf, [*proof, b""], root),
        "trailing root": (index, size, leaf, [*proof, root], root),
        "preceding garbage": (index, size, leaf, [b"", *proof], root),
        "preceding root": (index, size, leaf, [root, *proof], root),
        "truncated": (index, size, leaf, proof[:-1], root),
        "inserted element": (index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root),
        "reversed": (index, size, leaf, proof[::-1], root),
    }
    for i in range(len(proof)):
        for bit in range(8):
            cases[f"proof[{i}] bit {bit}"] = (index, size, leaf, _flip(proof, i, 1 << bit), root)
    return cases


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_every_corrupted_inclusion_proof_is_rejected(
    index: int, size: int, path: list[bytes]
) -> None:
    cases = _inclusion_corruptions(index, size, LEAF_HASHES[index], path, ROOTS[size - 1])
    if path == path[::-1]:
        del cases["reversed"]
    accepted = []
    for name, args in cases.items():
        try:
            verify_inclusion(*args)
        except ProofError:
            continue
        accepted.append(name)
    assert not accepted, f"accepted corrupted proofs: {accepted}"


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_every_corrupted_consistency_proof_is_rejected(
    first: int, second: int, proof: list[bytes]
) -> None:
    r1, r2 = ROOTS[first - 1], ROOTS[second - 1]
    cases: dict[str, tuple[int, int, bytes, bytes, list[bytes]]] = {
        "first - 1": (first - 1, second, r1, r2, proof),
        "first + 1": (first + 1, second, r1, r2, proof),
        "first ^ 2": (first ^ 2, second, r1, r2, proof),
        "second * 2": (first, second * 2, r1, r2, proof),
        "second / 2": (first, second // 2, r1, r2, proof),
        "wrong first root": (first, second, b"WrongRoot", r2, proof),
        "wrong second root": (first, second, r1, b"WrongRoot", proof),
        "other first root": (first, second, SOME_HASH, r2, proof),
        "swapped roots": (first, second, r2, r1, proof),
        "empty proof": (first, second, r1, r2, []),
        "trailing garbage": (first, second, r1, r2, [*proof, b""]),
        "trailing root1": (first, second, r1, r2, [*proof, r1]),
        "trailing root2": (first, second, r1, r2, [*proof, r2]),
        "preceding garbage": (first, second, r1, r2, [b"", *proof]),
        "preceding root1": (first, second, r1, r2, [r1, *proof]),
        "preceding root2": (first, second, r1, r2, [r2, *proof]),
        "preceding proof[0]": (first, second, r1, r2, [proof[0], *proof]),
        "truncated": (first, second, r1, r2, proof[:-1]),
        "reversed": (first, second, r1, r2, proof[::-1]),
    }
    for i in range(len(proof)):
        for bit in range(8):
            cases[f"proof[{i}] bit {bit}"] = (first, second, r1, r2, _flip(proof, i, 1 << bit))
    accepted = []
    for name, args in cases.items():
        try:
            verify_consistency(*args)
        except ProofError:
            continue
        accepted.append(name)
    assert not accepted, f"accepted corrupted proofs: {accepted}"


@pytest.mark.parametrize(
    ("first", "second", "r1", "r2", "proof", "ok"),
    [
        (0, 0, b"x", b"x", [], True),
        (0, 1, b"x", b"y", [], True),
        (1, 1, ROOTS[0], ROOTS[0], [], True),
        (1, 0, b"x", b"y", [], False),
        (2, 1, b"x", b"y", [], False),
        (1, 2, ROOTS[0], ROOTS[1], [], False),
        (0, 0, EMPTY_ROOT, SOME_HASH, [], False),
        (1, 1, EMPTY_ROOT, SOME_HASH, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_consistency_edge_cases(
    first: int, second: int, r1: bytes, r2: bytes, proof: list[bytes], ok: bool
) -> None:
    run: Callable[[], None] = lambda: verify_consistency(first, second, r1, r2, proof)  # noqa: E731
    if ok:
        run()
    else:
        with pytest.raises(ProofError):
            run()


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_edge_cases_are_rejected(index: int, size: int) -> None:
    for leaf, root in ((SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)):
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, [], root)


def test_single_leaf_tree() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(0, 1, h, [], h)
    for leaf, root in ((h, b""), (b"", h), (b"", b"")):
        with pytest.raises(ProofError):
            verify_inclusion(0, 1, leaf, [], root)


def test_every_proof_of_every_small_tree_verifies_and_frontier_matches() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
    frontier = Frontier()
    roots = [EMPTY_ROOT]
    for h in leaves:
        frontier.append(h)
        roots.append(frontier.root())
        assert Frontier.from_hex(frontier.size, frontier.to_hex()).root() == roots[-1]
    for size in range(1, 34):
        assert roots[size] == root_of(leaves[:size])
        for index in range(size):
            verify_inclusion(index, size, leaves[index], inclusion_proof(leaves, index, size),
                             roots[size])  # fmt: skip
        for first in range(size + 1):
            verify_consistency(first, size, roots[first], roots[size],
                               consistency_proof(leaves, first, size))  # fmt: skip


def test_proof_requests_outside_the_tree_are_refused() -> None:
    with pytest.raises(ProofError, match="leaf 8 in a tree of size 8"):
        inclusion_proof(LEAF_HASHES, 8, 8)
    with pytest.raises(ProofError, match="from size 5 to size 3"):
        consistency_proof(LEAF_HASHES, 5, 3)
    with pytest.raises(ValueError, match="size 5 has 2 peaks, got 1"):
        Frontier.from_hex(5, ["00" * 32])
