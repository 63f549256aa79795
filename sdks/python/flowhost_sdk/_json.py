"""JSON in and out of host calls: every value crosses the WIT as JSON text."""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidInput

__all__ = ["dumps", "loads", "u32", "u64"]


def dumps(value: Any, what: str) -> str:
    """`value` as compact JSON text; `InvalidInput` naming `what` if it is not JSON."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what}: {e}") from None


def loads(text: str, what: str) -> Any:
    """The JSON text `text` decoded; `InvalidInput` naming `what` if it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"{what}: {e}") from None


def _uint(value: Any, bits: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number, not {value!r}")
    top = (1 << bits) - 1
    if not 0 <= value <= top:
        raise InvalidInput(f"{what} must be between 0 and {top}, not {value}")
    return value


def u32(value: Any, what: str) -> int:
    """`value` checked as a WIT `u32`."""
    return _uint(value, 32, what)


def u64(value: Any, what: str) -> int:
    """`value` checked as a WIT `u64`."""
    return _uint(value, 64, what)
