"""Errors: what a host call fails with, and what a flow fails with.

`FlowhostError` mirrors the WIT `error` variant: `.kind` is the case as the WIT spells it
(`"access-denied"`, ...), `.message` its text, and `str(e)` is `"kind: message"`, the same
text the Rust SDK gives and the one a run fails with when the error is not caught. Each case
has its own subclass, so a flow catches what matters::

    try:
        row = tables.get("Settings", "main")
    except AccessDenied as e:
        log.warn(f"no settings: {e.message}")

`FlowError` is the base of both: raise it with a text to end the run with exactly that text.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NoReturn, Type, TypeVar

from componentize_py_types import Err

__all__ = [
    "FlowError",
    "FlowhostError",
    "NotFound",
    "AccessDenied",
    "InvalidInput",
    "LimitExceeded",
    "Timeout",
    "Other",
]


class FlowError(Exception):
    """What a flow fails with: the run's error text is `str(error)`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message: str = message

    def __str__(self) -> str:
        return self.message


class FlowhostError(FlowError):
    """A host call failed: one WIT `error` case (`kind`) and its text (`message`)."""

    kind: str = "other"

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotFound(FlowhostError):
    """The table, row, flow or secret does not exist."""

    kind = "not-found"


class AccessDenied(FlowhostError):
    """The manifest does not grant this host, table, flow or secret."""

    kind = "access-denied"


class InvalidInput(FlowhostError):
    """The call's arguments are wrong (bad JSON, unknown column, wrong type)."""

    kind = "invalid-input"


class LimitExceeded(FlowhostError):
    """A size, depth, count or rate limit was hit."""

    kind = "limit-exceeded"


class Timeout(FlowhostError):
    """The call (or the run's deadline) ran out of time."""

    kind = "timeout"


class Other(FlowhostError):
    """Anything else (network failure, a child flow's error text, ...)."""

    kind = "other"


# The generated binding's case class name (`Error_AccessDenied`) → our exception.
_BY_CASE: Dict[str, Type[FlowhostError]] = {
    "Error_NotFound": NotFound,
    "Error_AccessDenied": AccessDenied,
    "Error_InvalidInput": InvalidInput,
    "Error_LimitExceeded": LimitExceeded,
    "Error_Timeout": Timeout,
    "Error_Other": Other,
}

T = TypeVar("T")


def from_wit(case: Any) -> FlowhostError:
    """The exception for a WIT `error` value (one of the generated `Error_*` classes)."""
    cls = _BY_CASE.get(type(case).__name__, Other)
    return cls(str(getattr(case, "value", case)))


def host(fn: Callable[..., T], *args: Any) -> T:
    """Calls a generated import, turning its `Err(error)` into the matching `FlowhostError`."""
    try:
        return fn(*args)
    except Err as e:
        raise from_wit(e.value) from None


def invalid(message: str) -> NoReturn:
    """Raises `InvalidInput` (a value the SDK cannot send as the WIT wants it)."""
    raise InvalidInput(message)
