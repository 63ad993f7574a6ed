"""Fixtures shared by every layer: backends (SQLite, PostgreSQL, Redis) and live servers."""

from __future__ import annotations

import os

from hypothesis import settings

from tests.support.backends import pg_databases, redis_url

# The SDKs read proxy settings from the environment; every test talks to 127.0.0.1 directly.
for _name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_name, None)

# `make mutation` runs a module's tests once per mutant: fewer examples per property there.
settings.register_profile("mutation", max_examples=15)
settings.load_profile(os.environ.get("HPCPLANE_HYPOTHESIS_PROFILE", "default"))

__all__ = ["pg_databases", "redis_url"]
