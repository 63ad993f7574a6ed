"""Fixtures shared by every layer: backends (SQLite, PostgreSQL, Redis) and live servers."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.backends import pg_databases, redis_url

# The SDKs read proxy settings from the environment; every test talks to 127.0.0.1 directly.
for _name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_name, None)

# Hypothesis's per-example deadline and its too-slow health check are wall-clock assertions: on a loaded
# machine they fail tests whose behaviour is right, so neither is used. `make mutation` runs a module's
# tests once per mutant: fewer examples per property there.
settings.register_profile("hpcplane", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("mutation", parent=settings.get_profile("hpcplane"), max_examples=15)
settings.load_profile(os.environ.get("HPCPLANE_HYPOTHESIS_PROFILE", "hpcplane"))

__all__ = ["pg_databases", "redis_url"]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test`), the scheduling of tests/support/scheduling.py."""
    if config.pluginmanager.hasplugin("xdist"):
        from tests.support import scheduling

        config.pluginmanager.register(scheduling, "hpcplane-scheduling")
