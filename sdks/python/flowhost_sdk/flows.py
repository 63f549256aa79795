"""Calling other flows, as the Workflows Call Flow and For Each cards do::

    from flowhost_sdk import call, for_each

    env = call("U01", {})                        # the child's output, decoded
    results = for_each("enrich", [{"id": 1}, {"id": 2}], concurrency=4)
    # [{"ok": True, "value": ...}, {"ok": False, "error": "text"}] in input order
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from componentize_py_types import Ok
from wit_world.imports import flows as _wit

from . import _json
from .errors import InvalidInput, Other, host

__all__ = ["call", "for_each", "for_each_all"]


def call(name: str, input: Any = None) -> Any:
    """Runs flow `name` with `input` (any JSON value; `None` = `{}`) as a child of this run
    and returns its output, decoded."""
    text = _json.dumps({} if input is None else input, f"input for flow {name}")
    out = host(_wit.call, name, text)
    return _json.loads(out, f"output of flow {name}")


def for_each(name: str, items: Sequence[Any], concurrency: int = 1) -> List[Dict[str, Any]]:
    """Runs flow `name` once per item, at most `concurrency` at a time. Returns one dict per
    item, in input order: `{"ok": True, "value": output}` or `{"ok": False, "error": text}`.
    Fails (raises) only when the flow cannot be called at all."""
    if isinstance(items, (str, bytes, dict)):
        raise InvalidInput(f"items for flow {name} must be a list")
    inputs = [_json.dumps(item, f"item for flow {name}") for item in items]
    width = max(1, _json.u32(concurrency, f"concurrency for flow {name}"))
    results: List[Dict[str, Any]] = []
    for r in host(_wit.for_each, name, inputs, width):
        if isinstance(r, Ok):
            try:
                results.append({"ok": True, "value": _json.loads(r.value, "")})
            except InvalidInput as e:
                results.append({"ok": False, "error": f"invalid output of flow {name}{e.message}"})
        else:
            results.append({"ok": False, "error": str(r.value)})
    return results


def for_each_all(name: str, items: Sequence[Any], concurrency: int = 1) -> List[Any]:
    """Like `for_each`, but every item must succeed: the outputs in input order, or `Other`
    naming the first item that failed."""
    results = for_each(name, items, concurrency)
    outputs = []
    for i, r in enumerate(results, start=1):
        if not r["ok"]:
            raise Other(f"flow {name} failed on item {i} of {len(results)}: {r['error']}")
        outputs.append(r["value"])
    return outputs
