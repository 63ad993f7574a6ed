"""Structured logging: every line of a request carries its request_id (bound in contextvars).

A request binds its fields with `bind_request` (one ContextVar set, reset at its end) rather than
structlog's bind/clear per key: the hot path pays one `set` and one `reset`, and the fields are merged
into a line only when one is actually written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

import structlog

_REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("hpcplane_request", default=None)
_level = logging.DEBUG  # until configure(): structlog's default writes every level


def enabled(level: int) -> bool:
    """Whether a line at `level` is written: the hot path skips building one that would be dropped."""
    return level >= _level


def bind_request(fields: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """Make `fields` (kept by reference: the caller may add to it) part of every line logged in this
    context until `unbind_request(token)`."""
    return _REQUEST.set(fields)


def unbind_request(token: Token[dict[str, Any] | None]) -> None:
    _REQUEST.reset(token)


def _merge_request(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    fields = _REQUEST.get()
    if fields:
        for key, value in fields.items():
            event.setdefault(key, value)
    return event


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "console") -> None:
    """Set up structlog once per process; `fmt` is console (for people) or json (for collectors)."""
    global _level
    _level = _LEVELS[level]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _merge_request,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=_LEVELS[level], stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
