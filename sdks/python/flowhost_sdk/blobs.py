"""Named object stores the operator configures under `blobs:` and the manifest grants::

    blobs.put("archive", "2026/01/02/batch.jsonl", data)
    names = blobs.list("archive", "2026/01/", limit=100)
"""

from __future__ import annotations

from typing import List, Optional, Union

from wit_world.imports import blobs as _wit

from . import _json
from .errors import InvalidInput, host

__all__ = ["put", "get", "list", "delete"]

_list = list


def put(store: str, key: str, data: Union[bytes, str]) -> None:
    """Writes `data` (bytes, or text as UTF-8) as object `key`, replacing any of that name."""
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"blob {key} of store {store}: data must be bytes or str")
    host(_wit.put, store, key, bytes(data))


def get(store: str, key: str) -> Optional[bytes]:
    """The object's bytes, or `None` if there is no such object."""
    data = host(_wit.get, store, key)
    return None if data is None else bytes(data)


def list(store: str, prefix: str = "", limit: int = 1000) -> List[str]:  # noqa: A001
    """Names of the objects whose name starts with `prefix`, sorted, at most `limit`."""
    return _list(host(_wit.list, store, prefix, _json.u32(limit, f"list limit of store {store}")))


def delete(store: str, key: str) -> bool:
    """Deletes the object; `False` if there was none."""
    return host(_wit.delete, store, key)
