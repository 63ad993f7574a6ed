"""Fixtures shared by every layer: backends (SQLite, PostgreSQL, Redis) and live servers."""

from __future__ import annotations

import os

from tests.support.backends import pg_databases, redis_url

# The SDKs read proxy settings from the environment; every test talks to 127.0.0.1 directly.
for _name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_name, None)

__all__ = ["pg_databases", "redis_url"]
