"""Secrets the manifest grants (`grants: secrets: [NAME]`), from the environment
(`FLOWHOST_SECRET_<NAME>`) or the secrets file. Never log or return them::

    token = secrets.get("API_TOKEN")
"""

from __future__ import annotations

from wit_world.imports import secrets as _wit

from .errors import host

__all__ = ["get"]


def get(name: str) -> str:
    """The value of secret `name` (`AccessDenied` if not granted, `NotFound` if unset)."""
    return host(_wit.get, name)
