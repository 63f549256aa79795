"""Time and scheduling::

    started = schedule.now()                      # "2026-01-02T03:04:05.678Z"
    schedule.request_run("O20", {"batch": 500})   # again, as soon as this run has committed
"""

from __future__ import annotations

from typing import Any

from wit_world.imports import schedule as _wit

from . import _json
from .errors import host

__all__ = ["now", "sleep", "request_run"]


def now() -> str:
    """The current time, RFC 3339 in UTC with millisecond precision."""
    return _wit.now()


def sleep(ms: int) -> None:
    """Sleeps `ms` milliseconds (counts against the run's deadline)."""
    _wit.sleep(_json.u64(ms, "sleep ms"))


def request_run(flow: str, input: Any = None, delay_ms: int = 0) -> None:
    """Asks the host to run `flow` with `input` (any JSON value; `None` = `{}`) after
    `delay_ms` (0 = as soon as this run has committed)."""
    text = _json.dumps({} if input is None else input, f"input for flow {flow}")
    host(_wit.request_run, flow, text, _json.u64(delay_ms, "request_run delay_ms"))
