"""What the operator granted other flows: ask before storing a URL other flows will call::

    grants.granted_urls([("M10", base_url), ("U00", base_url)])   # AccessDenied if not
"""

from __future__ import annotations

from typing import Iterable, Tuple

from wit_world.imports import grants as _wit

from .errors import host

__all__ = ["granted_urls"]


def granted_urls(checks: Iterable[Tuple[str, str]]) -> None:
    """Returns when every `(flow, url)` is allowed by that flow's effective grants; raises
    `AccessDenied` naming the flows and origins otherwise (`NotFound` for a flow that is not
    loaded, `InvalidInput` for a URL that is not one)."""
    host(_wit.granted_urls, [(str(f), str(u)) for f, u in checks])
