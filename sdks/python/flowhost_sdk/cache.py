"""A private in-memory cache per flow (survives between runs of the same host process, never
written to disk, a table, a log or run history)::

    token = cache.get("token") or fetch_token()
    cache.set("token", token, ttl_ms=50 * 60 * 1000)
"""

from __future__ import annotations

from typing import Optional

from wit_world.imports import cache as _wit

from . import _json

__all__ = ["get", "set", "remove"]


def get(key: str) -> Optional[str]:
    """The value under `key`, unless it is absent or expired."""
    return _wit.get(key)


def set(key: str, value: str, ttl_ms: int) -> None:  # noqa: A001
    """Stores `value` under `key` for `ttl_ms` milliseconds."""
    _wit.set(key, str(value), _json.u64(ttl_ms, f"cache ttl_ms of {key}"))


def remove(key: str) -> None:
    """Forgets `key`."""
    _wit.remove(key)
