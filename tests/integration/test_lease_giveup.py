"""A lease holder whose path to the store froze gives its task up before its lease ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from hpcplane.clock import SystemClock
from hpcplane.config import Settings
from hpcplane.domain.accounts import Principal
from hpcplane.domain.tasks import TaskType
from hpcplane.engine.runner import Engine
from hpcplane.services.clusters import seed_cluster
from hpcplane.store.db import Database, SessionLimits
from hpcplane.store.tables import sim_calls, tasks
from hpcplane.wiring import Services, build_services
from tests.support.backends import PgDatabases
from tests.support.pathproxy import PathProxy

pytestmark = pytest.mark.postgres

LEASE = 2.0


@pytest.fixture
def services(pg_databases: PgDatabases, tmp_path: Path) -> Iterator[Services]:
    settings = Settings(
        home=tmp_path, database_url=pg_databases.create(), redis_url=None, lease_seconds=LEASE,
        sim_step_seconds=0, db_timeout=1.0,
    )  # fmt: skip
    built = build_services(settings)
    yield built
    built.close()


def test_frozen_holder_gives_up_and_another_worker_finishes_the_task(services: Services) -> None:
    """A worker claims a StopCluster task, then its path to PostgreSQL freezes: its run ends (lease
    given up) while the path is still frozen, another worker claims the task once the lease expired,
    also while frozen, and runs it to its end; no provider call is applied twice."""
    issued = services.accounts.create_account("giveup")
    who = Principal(services.accounts.find(issued.account_id), issued.access_key_id)
    cluster_id = seed_cluster(
        services.db, services.clock, account_id=issued.account_id, region="cn-hangzhou", name="g",
        status="running", computes=3,
    )  # fmt: skip
    accepted = services.operations.cluster_operation(
        who, "req-1", TaskType.STOP_CLUSTER, cluster_id, {"Action": "StopCluster", "ClusterId": cluster_id}
    )
    url = make_url(services.db.url.render_as_string(hide_password=False))
    with PathProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        frozen_db = Database(
            url.set(port=proxy.port).render_as_string(hide_password=False),
            timeout=1.0, pool_size=3, max_overflow=0, engine_role=True,
            limits=SessionLimits(idle_in_transaction=1.0),
        )  # fmt: skip
        frozen = Engine(
            frozen_db, services.engine.provider, SystemClock(), owner="frozen-holder",
            lease_seconds=LEASE, max_attempts=5, max_step_seconds=600,
        )  # fmt: skip
        try:
            (lease,) = frozen.claim(1, task_id=accepted.task_id)
            proxy.freeze()
            runner = threading.Thread(target=frozen.run, args=(lease,))
            runner.start()
            runner.join(30)
            assert not runner.is_alive()
            assert proxy.frozen  # the holder gave up while its path was still frozen
            deadline = time.monotonic() + 30
            while not (taken := services.engine.claim(1, task_id=accepted.task_id)):
                assert time.monotonic() < deadline, "the task was never claimed by another worker"
                time.sleep(0.1)
            assert proxy.frozen  # nothing of the frozen holder's session blocked the claim
            services.engine.run(taken[0])
        finally:
            proxy.thaw()
            frozen_db.dispose()
    with services.db.read() as conn:
        status = conn.execute(select(tasks.c.status).where(tasks.c.task_id == accepted.task_id)).scalar_one()
        repeated = conn.execute(
            select(sim_calls.c.token).group_by(sim_calls.c.token).having(func.count() > 1)
        ).all()
    assert status == "Success"
    assert repeated == []
