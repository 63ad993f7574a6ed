"""A worker warns when its settings and the API process's recorded ones disagree in a way that matters."""

from __future__ import annotations

from hpcplane.config import Settings
from hpcplane.services import agreement
from hpcplane.store.db import Database


def test_worker_is_told_which_settings_differ_from_the_api(db: Database) -> None:
    """The API records its settings; a worker with another capacity (which has no effect on it) and
    another step duration (which changes how its tasks run) gets one warning for each, naming both
    values; a worker that agrees gets none."""
    api = Settings(sim_capacity=10, sim_step_seconds=2.0)
    agreement.record_api_settings(db, api)
    worker = Settings(sim_capacity=500, sim_step_seconds=0.5)
    warnings = agreement.disagreements(db, worker)
    assert len(warnings) == 2
    assert warnings[0].startswith("HPCPLANE_SIM_CAPACITY=500 has no effect on a worker")
    assert "(10)" in warnings[0]
    assert warnings[1].startswith("HPCPLANE_SIM_STEP_SECONDS=0.5 here but 2.0 in the API process")
    assert agreement.disagreements(db, Settings(sim_capacity=10, sim_step_seconds=2.0)) == []


def test_nothing_recorded_means_no_warning(db: Database) -> None:
    """Before any API process started on the store, a worker has nothing to compare with."""
    assert agreement.disagreements(db, Settings(sim_capacity=1)) == []


def test_a_restarted_api_process_replaces_the_record(db: Database) -> None:
    """The last API process to start is the one compared with."""
    agreement.record_api_settings(db, Settings(lease_seconds=10))
    agreement.record_api_settings(db, Settings(lease_seconds=20))
    assert agreement.disagreements(db, Settings(lease_seconds=20)) == []
    assert len(agreement.disagreements(db, Settings(lease_seconds=10))) == 1
