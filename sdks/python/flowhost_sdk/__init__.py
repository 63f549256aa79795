"""flowhost_sdk (a minimal stand-in until the full SDK lands): the flow entry point, host-call
errors as `FlowError` carrying the WIT case, and `tables.count`."""

import json

from componentize_py_types import Err
from wit_world.imports import tables as _tables
from wit_world.imports import types as _types

_KINDS = {
    _types.Error_NotFound: "not-found",
    _types.Error_AccessDenied: "access-denied",
    _types.Error_InvalidInput: "invalid-input",
    _types.Error_LimitExceeded: "limit-exceeded",
    _types.Error_Timeout: "timeout",
    _types.Error_Other: "other",
}


class FlowError(Exception):
    """A host call's error: `kind` is the WIT case (e.g. `access-denied`)."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def _host(call, *args):
    try:
        return call(*args)
    except Err as e:
        raise FlowError(_KINDS.get(type(e.value), "other"), e.value.value) from None


class tables:
    @staticmethod
    def count(table, filter=None):
        filter = {} if filter is None else filter
        return _host(_tables.count, table, json.dumps(filter))


def flow(fn):
    """`run = flow(fn)` in the WitWorld class: JSON in, JSON out, an exception fails the run."""

    def run(self, input):
        try:
            return json.dumps(fn(json.loads(input or "{}")))
        except Exception as e:
            raise Err(str(e) if isinstance(e, FlowError) else f"{type(e).__name__}: {e}")

    return run
