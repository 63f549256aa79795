"""Levelled logging into the host's log and the run's history record::

    log.info(f"{n} rows sent")
"""

from __future__ import annotations

from wit_world.imports import log as _wit

__all__ = ["trace", "debug", "info", "warn", "error"]


def trace(message: str) -> None:
    """Logs `message` at level trace."""
    _wit.log(_wit.Level.TRACE, str(message))


def debug(message: str) -> None:
    """Logs `message` at level debug."""
    _wit.log(_wit.Level.DEBUG, str(message))


def info(message: str) -> None:
    """Logs `message` at level info."""
    _wit.log(_wit.Level.INFO, str(message))


def warn(message: str) -> None:
    """Logs `message` at level warn."""
    _wit.log(_wit.Level.WARN, str(message))


def error(message: str) -> None:
    """Logs `message` at level error."""
    _wit.log(_wit.Level.ERROR, str(message))
