"""The entry point: `@flow` marks the flow author's `run(input) -> output`, and `WitWorld` is
the class componentize-py exports, which decodes the input, calls it and encodes the output.

The run's input is decoded from JSON (an empty input counts as `{}`; bad JSON fails the run
with `invalid input for flow: ...`), the function's return value is encoded as the output.
The run fails with:

- `kind: message` for an uncaught `FlowhostError` (`access-denied: table Execution Log is not
  granted ...`), the same text the Rust SDK gives;
- the text of a `FlowError` the flow raised (`raise FlowError("batch must be positive")`);
- `TypeName: message (at app.py:LINE)` for any other exception, never a traceback dump.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any, Callable, Optional

import wit_world
from componentize_py_types import Err

from .errors import FlowError

__all__ = ["flow", "WitWorld"]

RunFn = Callable[[Any], Any]

_run: Optional[RunFn] = None
_SDK_DIR = os.path.dirname(os.path.abspath(__file__))


def flow(fn: RunFn) -> RunFn:
    """Marks `fn(input) -> output` as the flow's entry point (one per flow)."""
    global _run
    _run = fn
    return fn


def _where(e: BaseException) -> str:
    """` (at FILE:LINE)` of the innermost frame outside the SDK, or `""`."""
    frames = [
        f
        for f in traceback.extract_tb(e.__traceback__)
        if os.path.dirname(os.path.abspath(f.filename)) != _SDK_DIR
    ]
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {os.path.basename(last.filename)}:{last.lineno})"


def run_json(run: Optional[RunFn], text: str) -> str:
    """Decodes `text`, calls `run`, encodes its result; raises `Err(error text)` on failure."""
    if run is None:
        raise Err("the flow has no entry point: mark its run function with @flow")
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise Err(f"invalid input for flow: {e}") from None
    try:
        output = run(value)
    except FlowError as e:
        raise Err(str(e)) from None
    except Exception as e:  # noqa: BLE001 - every failure becomes the run's one-line error
        message = str(e)
        head = type(e).__name__ + (f": {message}" if message else "")
        raise Err(head + _where(e)) from None
    try:
        return json.dumps(output, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise Err(f"invalid output of flow: {e}") from None


class WitWorld(wit_world.WitWorld):
    """The export componentize-py looks for: `from flowhost_sdk import WitWorld` in app.py."""

    def run(self, input: str) -> str:
        return run_json(_run, input)
