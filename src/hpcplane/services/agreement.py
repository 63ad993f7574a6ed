"""Which process a setting takes effect in, and a warning when a worker's settings and the API's disagree.

The API process records the settings that shape tasks (its effective simulation and engine settings) in
the store when it starts; a worker compares its own with them when it starts and warns about each
difference that matters. Nothing is refused: a worker with other fault settings may be on purpose.
"""

from __future__ import annotations

import json
from typing import Any

from hpcplane.config import Settings
from hpcplane.store import accounts as meta_store
from hpcplane.store.db import Database

META_KEY = "api_settings"

# Read by the API process only, when a call creates a task: a worker's value has no effect.
API_ONLY = ("sim_capacity",)
# Read by whichever process runs the task's steps (a worker, or serve's in-process worker).
ENGINE = ("sim_step_seconds", "sim_jitter", "sim_seed", "sim_faults", "lease_seconds", "max_attempts")


def recorded_fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in (*API_ONLY, *ENGINE)}


def record_api_settings(db: Database, settings: Settings) -> None:
    """Store this API process's effective settings (the last API process to start wins)."""
    with db.write() as conn:
        meta_store.set_meta(conn, META_KEY, json.dumps(recorded_fields(settings), sort_keys=True))


def disagreements(db: Database, settings: Settings) -> list[str]:
    """What a worker should warn about: each setting that differs from the API's recorded one."""
    with db.read() as conn:
        stored = meta_store.get_meta(conn, META_KEY)
    if stored is None:
        return []
    api: dict[str, Any] = json.loads(stored)
    mine = recorded_fields(settings)
    warnings = []
    for name in API_ONLY:
        if name in api and api[name] != mine[name]:
            warnings.append(
                f"HPCPLANE_{name.upper()}={mine[name]!r} has no effect on a worker: the API process applies"
                f" its own ({api[name]!r}) when a task is created"
            )
    for name in ENGINE:
        if name in api and api[name] != mine[name]:
            warnings.append(
                f"HPCPLANE_{name.upper()}={mine[name]!r} here but {api[name]!r} in the API process: tasks"
                " run differently depending on which process's worker runs them"
            )
    return warnings
