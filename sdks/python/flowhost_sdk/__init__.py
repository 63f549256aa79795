"""flowhost_sdk: what a Python flow is written with.

Thin, typed wrappers over the bindings componentize-py generates from the host's WIT
(`wit/flow.wit`), with the verbs of the Rust SDK. Values are plain Python: rows, inputs and
outputs are dicts/lists (the SDK does the JSON), and a failed host call raises a
`FlowhostError` subclass carrying the WIT error case::

    from flowhost_sdk import WitWorld, flow, tables

    @flow
    def run(input):
        return {"input": input, "log_rows": tables.count("Execution Log")}

Modules: `tables`, `http`, `secrets`, `log`, `schedule`, `blobs`, `cache`, `grants`;
functions `call`, `for_each`, `for_each_all` (child flows); `errors` (the exceptions);
`entry` (`flow` and `WitWorld`, the entry point).
"""

from . import blobs, cache, grants, http, log, schedule, secrets, tables
from .entry import WitWorld, flow
from .errors import (
    AccessDenied,
    FlowError,
    FlowhostError,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Other,
    Timeout,
)
from .flows import call, for_each, for_each_all

__all__ = [
    "WitWorld",
    "flow",
    "call",
    "for_each",
    "for_each_all",
    "tables",
    "http",
    "secrets",
    "log",
    "schedule",
    "blobs",
    "cache",
    "grants",
    "FlowError",
    "FlowhostError",
    "NotFound",
    "AccessDenied",
    "InvalidInput",
    "LimitExceeded",
    "Timeout",
    "Other",
]
