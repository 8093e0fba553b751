"""Structure checks that never execute anything: pickle imports, archives, safetensors,
ONNX; and the HTML evidence page."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from paved_validator.domain import pickles
from paved_validator.domain.archives import SizeLimits, expansion_problem
from paved_validator.domain.formats import FormatError, check_onnx, check_safetensors
from paved_validator.domain.report_html import render

pytestmark = pytest.mark.unit

LIMITS = SizeLimits(
    max_bytes=10 * 2**20, max_unpacked_bytes=4 * 2**20, max_ratio=50, max_members=100
)


class _Reduce:
    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (_Reduce(eval, ("1+1",)), "imports 'builtins.eval', outside the allowed packages"),
        (_Reduce(exec, ("pass",)), "imports 'builtins.exec', outside the allowed packages"),
        (_Reduce(getattr, (1, "real")), "imports 'builtins.getattr'"),
    ],
)
def test_pickle_imports_outside_the_allowlist_are_named(tmp_path: Path, payload, expected) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    _, problems = pickles.check(path)
    assert any(expected in p for p in problems), problems


def test_allowed_packages_still_refuse_test_helpers_and_file_touching_classes(
    tmp_path: Path,
) -> None:
    assert "never allowed (testing)" in (
        pickles.import_problem("numpy.testing._private.utils.runstring") or ""
    )
    assert "touches files" in (pickles.import_problem("numpy.memmap") or "")
    assert "does not exist" in (pickles.import_problem("sklearn.no_such_module.X") or "")
    assert "a function" in (pickles.import_problem("numpy.load") or "")
    assert pickles.import_problem("sklearn.linear_model._logistic.LogisticRegression") is None


def test_a_computed_import_target_is_refused(tmp_path: Path) -> None:
    # STACK_GLOBAL whose module name comes out of a call, not a literal: cannot be checked.
    import pickletools

    body = (
        b"\x80\x04"  # PROTO 4
        b"\x8c\x08builtins\x8c\x03str\x93"  # STACK_GLOBAL builtins.str
        b"\x8c\x02os\x85R"  # str('os') -> computed value
        b"\x8c\x06system\x93"  # STACK_GLOBAL (<computed>, 'system')
        b"."
    )
    path = tmp_path / "m.pkl"
    path.write_bytes(body)
    list(pickletools.genops(body))  # well-formed
    summary, problems = pickles.check(path)
    assert summary.unresolved == 1
    assert any("computed at load time" in p for p in problems)


def test_malformed_and_empty_pickles(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(pickles.PickleFormatError):
        pickles.walk(bad)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(pickles.PickleFormatError, match="exhausted before seeing STOP"):
        pickles.walk(empty)


def test_a_zip_bomb_is_caught_by_its_ratio_and_by_counting(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (3 * 2**20))
    problem, _ = expansion_problem(bomb, "bomb.zip", LIMITS)
    assert problem is not None
    assert "compression-ratio limit: a decompression bomb" in problem

    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (5 * 2**20))
    problem, _ = expansion_problem(big, "big.zip", LIMITS)
    assert problem is not None
    assert "unpacks to more than 4.0 MiB" in problem


def test_a_zip_whose_directory_lies_is_still_counted(tmp_path: Path) -> None:
    liar = tmp_path / "liar.zip"
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (5 * 2**20))
    data = bytearray(liar.read_bytes())
    # Shrink the uncompressed size in both headers to 10 bytes.
    real = struct.pack("<I", 5 * 2**20)
    assert data.count(real) == 2
    data = data.replace(real, struct.pack("<I", 10))
    liar.write_bytes(bytes(data))
    problem, _ = expansion_problem(liar, "liar.zip", LIMITS)
    assert problem is not None  # either counted past the limit or refused as corrupt


def test_gzip_bombs_and_plain_files(tmp_path: Path) -> None:
    gz = tmp_path / "model.pkl"  # the name does not matter, the magic bytes do
    gz.write_bytes(gzip.compress(b"\0" * (6 * 2**20)))
    problem, _ = expansion_problem(gz, "model.pkl", LIMITS)
    assert problem is not None
    assert problem.startswith("gzip 'model.pkl' unpacks to more than 4.0 MiB")

    plain = tmp_path / "plain.pkl"
    plain.write_bytes(b"x" * 1000)
    assert expansion_problem(plain, "plain.pkl", LIMITS)[0] is None

    npz = tmp_path / "ok.npz"
    np.savez_compressed(npz, X=np.random.default_rng(0).normal(size=(100, 4)))
    problem, summary = expansion_problem(npz, "ok.npz", LIMITS)
    assert problem is None
    assert summary.startswith("zip 'ok.npz': 1 member(s)")


def _safetensors(tmp_path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_headers_are_bounds_checked(tmp_path: Path) -> None:
    good = _safetensors(
        tmp_path,
        {
            "__metadata__": {"paved.architecture": "mlp"},
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        },
        b"\0" * 8,
    )
    assert check_safetensors(good).tensors == {"a": ("F32", (2,))}
    cases = [
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, "does not match"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}, "outside the"),
        ({"a": {"dtype": "PY", "shape": [2], "data_offsets": [0, 8]}}, "unknown dtype 'PY'"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, "gap or overlap"),
    ]
    for header, expected in cases:
        with pytest.raises(FormatError, match=expected):
            check_safetensors(_safetensors(tmp_path, header, b"\0" * 8))
    huge = tmp_path / "h.safetensors"
    huge.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(FormatError, match="does not fit"):
        check_safetensors(huge)


def test_onnx_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\xff\xfe not a protobuf")
    with pytest.raises(FormatError, match="ONNX"):
        check_onnx(path)


def test_html_report_escapes_everything() -> None:
    page = render(
        {
            "model_name": "<script>alert(1)</script>",
            "version": 1,
            "passed": False,
            "reasons": ["format: <img src=x onerror=alert(1)>"],
            "checks": [
                {"name": "format", "outcome": "failed", "detail": "<b>x</b>", "duration_ms": 3}
            ],
            "details": {
                "metrics": {
                    "thresholds": [
                        {
                            "metric": "auc",
                            "value": 0.5,
                            "min": 0.9,
                            "ok": False,
                            "problem": "auc low",
                        }
                    ]
                }
            },
        },
        evidence_uri="s3://b/k.json",
    )
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert "FAILED" in page
    assert "auc low" in page
    assert "default-src 'none'" in page
