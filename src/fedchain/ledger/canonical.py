"""Canonical JSON: the bytes every backend hashes and signs.

The encoding is RFC 8785 (JSON Canonicalization Scheme) restricted to what ledger records need,
so the TypeScript chaincode produces identical bytes with nothing more than sorted keys and
``JSON.stringify`` for scalars:

* objects: keys sorted; keys are ASCII (``[a-z0-9_-]``-style names or org ids), so sorting by
  code point equals JCS's UTF-16 order;
* strings: minimal JSON escaping (``"``, ``\\``, control characters), no ``\\u`` escapes for
  other characters, UTF-8 output; lone surrogates are refused;
* numbers: integers within ±(2^53 - 1) print as integers; other finite floats print as
  ECMAScript ``Number.prototype.toString`` does (``1.0`` → ``1``, ``1e21`` → ``1e+21``,
  ``1e-7`` → ``1e-7``); NaN and infinities are refused;
* ``true``, ``false``, ``null``; no whitespace anywhere.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fedchain.errors import RecordError

__all__ = ["MAX_SAFE_INT", "canonical_json", "es_number", "loads"]

MAX_SAFE_INT = 2**53 - 1
_MAX_DEPTH = 16
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}  # fmt: skip
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` canonically; raise :class:`RecordError` for anything not representable."""
    parts: list[str] = []
    _encode(value, parts, 0)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError("string contains a lone surrogate; not valid UTF-8") from exc


def _encode(value: Any, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise RecordError(f"value nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        out.append("null" if value is None else ("true" if value else "false"))
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise RecordError(f"integer {value} is outside ±(2^53-1)")
        out.append(int.__repr__(value))  # a subclass's own repr (an enum's name) is no number
    elif isinstance(value, float):
        out.append(es_number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, Mapping):
        _encode_object(value, out, depth)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise RecordError(f"type {type(value).__name__} has no canonical JSON form")


def _encode_object(value: Mapping[Any, Any], out: list[str], depth: int) -> None:
    for key in value:
        if not isinstance(key, str) or not key.isascii():
            raise RecordError(f"object key {key!r} must be an ASCII string")
    out.append("{")
    for i, key in enumerate(sorted(value)):
        if i:
            out.append(",")
        out.append(_string(key))
        out.append(":")
        _encode(value[key], out, depth + 1)
    out.append("}")


def _string(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:  # the common case, without a per-character loop
        return f'"{text}"'
    escaped = (_ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ch < " " else ch) for ch in text)
    return '"' + "".join(escaped) + '"'


def es_number(x: float) -> str:
    """Format a float exactly as ECMAScript's ``Number.prototype.toString`` (radix 10)."""
    if math.isnan(x) or math.isinf(x):
        raise RecordError(f"{x} is not a finite number")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + es_number(-x)
    digits, n = _shortest_digits(x)
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exp = n - 1
    sign = "+" if exp >= 0 else "-"
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(exp)}"


def _shortest_digits(x: float) -> tuple[str, int]:
    """Shortest round-tripping decimal digits of positive ``x`` and n with x = 0.d1d2… × 10^n."""
    # float's own repr: a subclass (numpy's float64) may print itself as ``np.float64(0.5)``
    mantissa, _, exponent = float.__repr__(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    leading_zeros = len(whole + frac) - len(digits)
    n = len(whole) - leading_zeros + (int(exponent) if exponent else 0)
    return digits.rstrip("0") or "0", n


def _js_int(text: str) -> int | float:
    """Integers beyond ±(2^53-1) are floats, as in JavaScript (``1e20`` prints as digits)."""
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INT else float(value)


def loads(data: bytes) -> Any:
    """Parse JSON as JavaScript would: integers beyond the safe range become floats."""
    try:
        return json.loads(data.decode("utf-8"), parse_int=_js_int)
    except (UnicodeDecodeError, ValueError, OverflowError) as exc:  # JSONDecodeError too
        raise RecordError(f"not valid UTF-8 JSON: {exc}") from exc
