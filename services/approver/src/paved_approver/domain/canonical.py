"""RFC 8785 (JSON Canonicalization Scheme) for the JSON values a model version holds.

Implemented on the standard library: keys sorted by UTF-16 code units, no
whitespace, strings escaped as ECMAScript's JSON.stringify does, numbers in
ECMAScript's shortest round-trip form. Integers are written exactly (the versions
and counts we hash are far below 2**53, where the two agree).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any


class CanonicalizationError(ValueError):
    """The value has no canonical JSON form (NaN, infinity, a non-string key, ...)."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``value`` (dict, list, str, int, float, bool, None)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, dict):
        _object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise CanonicalizationError(f"no JSON form for {type(value).__name__} value {value!r}")


def _object(value: dict[Any, Any], out: list[str]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise CanonicalizationError(f"object keys must be strings, got {key!r}")
    out.append("{")
    # RFC 8785 orders members by the UTF-16 code units of their names.
    for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
        if i:
            out.append(",")
        out.append(_string(key))
        out.append(":")
        _write(value[key], out)
    out.append("}")


def _string(text: str) -> str:
    # json.dumps without ensure_ascii escapes exactly '"', '\\' and the C0 controls,
    # with the short forms (\b \f \n \r \t) and lowercase \u00xx: what RFC 8785 asks.
    return json.dumps(text, ensure_ascii=False)


def _number(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        raise CanonicalizationError(f"{x!r} has no JSON form")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _number(-x)
    # repr() is the shortest string that round-trips, as in ECMAScript; only the
    # layout (where the point goes, when to use an exponent) differs.
    _, digit_tuple, exponent = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(d) for d in digit_tuple)
    k = len(digits)
    n = k + exponent  # the value is 0.<digits> * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{sign}{abs(e)}"
