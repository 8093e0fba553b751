"""Size limits: the artifact itself, and what it would expand to if it is compressed.

Zip files (``.zip``, ``.npz``, PyTorch/Keras containers) and gzip streams are detected
by their magic bytes, not their names. A zip's directory can lie about sizes, so the
members are really decompressed, streamed and counted, and the count stops at the
limit: checking a bomb costs at most ``max_unpacked`` bytes of work, never a disk.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SizeLimits:
    """How big an artifact, and what it unpacks to, may be."""

    max_bytes: int
    max_unpacked_bytes: int
    max_ratio: float
    max_members: int


def mib(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def size_problem(name: str, size: int, limits: SizeLimits) -> str | None:
    """Why an object of ``size`` bytes is too big to fetch (None when it is not)."""
    if size > limits.max_bytes:
        return f"{name!r} is {mib(size)} ({size} bytes), over the {mib(limits.max_bytes)} limit"
    return None


def kind(path: Path) -> str:
    """``zip``, ``gzip`` or ``plain``, from the first bytes."""
    with path.open("rb") as f:
        head = f.read(4)
    if head in ZIP_MAGIC:
        return "zip"
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    return "plain"


def expansion_problem(path: Path, name: str, limits: SizeLimits) -> tuple[str | None, str]:
    """``(problem, summary)``: why ``path`` unpacks too far (None when it does not)."""
    packed = max(1, path.stat().st_size)
    found = kind(path)
    if found == "plain":
        return None, f"{name!r}: {path.stat().st_size} bytes, not compressed"
    try:
        if found == "zip":
            members, unpacked = _zip_unpacked(path, limits)
        else:
            members, unpacked = 1, _gzip_unpacked(path, limits.max_unpacked_bytes)
    except _TooBigError as exc:
        return (
            f"{found} {name!r} unpacks to more than {mib(limits.max_unpacked_bytes)} "
            f"(stopped counting at {mib(exc.seen)}{exc.where}; {mib(packed)} packed): "
            "a decompression bomb",
            "",
        )
    except (zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError, NotImplementedError) as exc:
        return f"{found} {name!r} is corrupt or unsupported: {type(exc).__name__}: {exc}", ""
    ratio = unpacked / packed
    summary = f"{found} {name!r}: {members} member(s), {mib(packed)} unpacks to {mib(unpacked)}"
    if ratio > limits.max_ratio:
        return (
            f"{found} {name!r} unpacks {ratio:.0f}:1 ({mib(packed)} to {mib(unpacked)}), over "
            f"the {limits.max_ratio:g}:1 compression-ratio limit: a decompression bomb",
            summary,
        )
    return None, summary


class _TooBigError(Exception):
    def __init__(self, seen: int, where: str = "") -> None:
        super().__init__(seen)
        self.seen = seen
        self.where = where


def _zip_unpacked(path: Path, limits: SizeLimits) -> tuple[int, int]:
    total = 0
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise zipfile.BadZipFile(
                f"{len(infos)} members, over the limit of {limits.max_members}"
            )
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_unpacked_bytes:
            raise _TooBigError(declared, " as declared by its directory")
        for info in infos:
            with zf.open(info) as member:
                while chunk := member.read(_CHUNK):
                    total += len(chunk)
                    if total > limits.max_unpacked_bytes:
                        raise _TooBigError(total, f" in member {info.filename!r}")
    return len(infos), total


def _gzip_unpacked(path: Path, cap: int) -> int:
    total = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            total += len(chunk)
            if total > cap:
                raise _TooBigError(total)
    return total
