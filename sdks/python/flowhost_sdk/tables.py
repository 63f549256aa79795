"""Tables: rows are dicts keyed by column name, checked by the host against the table's schema.

A filter is a dict of `column: value` pairs that a row must all match (`None` or `{}` = every
row). A table without a key column is keyed by its row id, given back in each row as `_id`
(see `row_id`)::

    from flowhost_sdk import tables

    key = tables.insert("Contacts", {"email": "a@example.com", "name": "Ann"})
    ann = tables.get("Contacts", key)                  # dict, or None
    rows = tables.find("Contacts", {"name": "Ann"}, limit=10)
    tables.update("Contacts", key, {"name": "Anna"})   # True if the row was there
    tables.delete_many("Contacts", [key, "b@example.com"])  # how many there were
    n = tables.count("Contacts")
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from wit_world.imports import tables as _wit

from . import _json
from .errors import InvalidInput, host

__all__ = [
    "Row",
    "get",
    "find",
    "first",
    "insert",
    "insert_many",
    "upsert",
    "update",
    "delete",
    "delete_many",
    "clear",
    "count",
    "row_id",
]

Row = Dict[str, Any]
"""A row: column name → value."""


def _filter(table: str, filter: Optional[Mapping[str, Any]]) -> str:
    if filter is None:
        return "{}"
    if not isinstance(filter, Mapping):
        raise InvalidInput(
            f"filter for table {table} must be a dict of column: value, not {filter!r}"
        )
    return _json.dumps(dict(filter), f"filter for table {table}")


def _row(table: str, row: Mapping[str, Any], what: str = "row") -> str:
    if not isinstance(row, Mapping):
        raise InvalidInput(f"{what} for table {table} must be a dict, not {row!r}")
    return _json.dumps(dict(row), f"{what} for table {table}")


def get(table: str, key: str) -> Optional[Row]:
    """The row whose key is `key`, or `None`."""
    text = host(_wit.get, table, str(key))
    return None if text is None else _json.loads(text, f"row of table {table}")


def find(
    table: str, filter: Optional[Mapping[str, Any]] = None, limit: Optional[int] = None
) -> List[Row]:
    """Rows matching every `column: value` of `filter`, oldest first, at most `limit` (the
    host caps it)."""
    cap = None if limit is None else _json.u32(limit, f"limit for table {table}")
    text = host(_wit.find, table, _filter(table, filter), cap)
    rows = _json.loads(text, f"rows of table {table}")
    if not isinstance(rows, list):
        raise InvalidInput(f"rows of table {table}: expected a JSON array")
    return rows


def first(table: str, filter: Optional[Mapping[str, Any]] = None) -> Optional[Row]:
    """The oldest row matching `filter`, or `None`."""
    rows = find(table, filter, 1)
    return rows[0] if rows else None


def insert(table: str, row: Mapping[str, Any]) -> str:
    """Inserts one row; fails if its key exists. Returns the row's key."""
    return host(_wit.insert, table, _row(table, row))


def insert_many(table: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """Inserts every row in one step; returns how many were written."""
    if isinstance(rows, (str, bytes, Mapping)):
        raise InvalidInput(f"rows for table {table} must be a list of dicts")
    return host(_wit.insert_many, table, _json.dumps([dict(r) for r in rows], f"rows for table {table}"))


def upsert(table: str, row: Mapping[str, Any]) -> str:
    """Inserts the row, or replaces the one with the same key. Returns the row's key."""
    return host(_wit.upsert, table, _row(table, row))


def update(table: str, key: str, changes: Mapping[str, Any]) -> bool:
    """Sets the given columns on the row with `key`; `False` if there is none."""
    return host(_wit.update, table, str(key), _row(table, changes, "changes"))


def delete(table: str, key: str) -> bool:
    """Deletes the row with `key`; `False` if there is none."""
    return host(_wit.delete, table, str(key))


def delete_many(table: str, keys: Sequence[str]) -> int:
    """Deletes the rows with these keys (at most 10,000 per call) in one step; returns how many
    there were. (Added in WIT 0.1.1.)"""
    if isinstance(keys, (str, bytes)):
        raise InvalidInput(f"keys for table {table} must be a list of keys, not one string")
    return host(_wit.delete_many, table, [str(k) for k in keys])


def clear(table: str) -> int:
    """Deletes every row; returns how many."""
    return host(_wit.clear, table)


def count(table: str, filter: Optional[Mapping[str, Any]] = None) -> int:
    """How many rows match `filter` (`None` = all)."""
    return host(_wit.count, table, _filter(table, filter))


def row_id(row: Mapping[str, Any]) -> Optional[str]:
    """The `_id` of a row of a table without a key column, as the text `get`, `update` and
    `delete` take (`None` if the row has none)."""
    value = row.get("_id")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None
