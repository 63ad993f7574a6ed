"""Workers' housekeeping: task history past the retention period and long-expired STS credentials go."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hpcplane.config import Settings
from hpcplane.domain.accounts import Principal
from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.engine.worker import Worker
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.tasks import record_task
from hpcplane.store.tables import clusters, sts_credentials, tasks
from hpcplane.wiring import Services, build_services

TRUST = (
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"RAM":["%s"]}}]}'
)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(Settings(home=tmp_path, sim_step_seconds=0))
    yield built
    built.close()


def _count(services: Services, table: object) -> int:
    with services.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_retention_purges_only_old_history(services: Services) -> None:
    """Tasks that ended before the retention period are deleted; running and recent ones stay."""
    issued = services.accounts.create_account("keeper")
    cluster = seed_cluster(
        services.db, services.clock, account_id=issued.account_id, region="cn-hangzhou", name="c"
    )

    def task(status: TaskStatus, age: timedelta) -> str:
        return record_task(
            services.db,
            services.clock,
            account_id=issued.account_id,
            cluster_id=cluster,
            task_type=TaskType.STOP_CLUSTER,
            total_steps=35,
            status=status,
            created_at=services.clock.now() - age,
        )

    task(TaskStatus.SUCCESS, timedelta(days=3))
    recent = task(TaskStatus.FAILED, timedelta(hours=1))
    running = task(TaskStatus.PROCESSING, timedelta(days=9))
    worker = Worker(services.engine, concurrency=1, poll_interval=0.1, retention=86400)
    assert worker.housekeep() == (1, 0)
    with services.db.read() as conn:
        left = set(conn.execute(select(tasks.c.task_id)).scalars())
        counted = conn.execute(select(clusters.c.task_count).where(clusters.c.id == cluster)).scalar_one()
    assert left == {recent, running}
    # The cluster's count of its rows (ListTasks' TotalCount with Archived=true) follows the purge.
    assert counted == 2


def test_no_retention_keeps_history(services: Services) -> None:
    """Without HPCPLANE_TASK_RETENTION history is kept forever."""
    issued = services.accounts.create_account("forever")
    cluster = seed_cluster(
        services.db, services.clock, account_id=issued.account_id, region="cn-hangzhou", name="c"
    )
    record_task(
        services.db,
        services.clock,
        account_id=issued.account_id,
        cluster_id=cluster,
        task_type=TaskType.START_CLUSTER,
        total_steps=17,
        status=TaskStatus.SUCCESS,
        created_at=services.clock.now() - timedelta(days=400),
    )
    assert Worker(services.engine, concurrency=1, poll_interval=0.1).housekeep() == (0, 0)
    assert _count(services, tasks) == 1


def test_sts_credentials_are_purged_a_day_after_they_expire(services: Services) -> None:
    """Expired credentials stay a day (so callers hear 'expired'), then go."""
    issued = services.accounts.create_account("roles")
    account = services.accounts.find("roles")
    services.ram.create_role("roles", "ops", TRUST % f"acs:ram::{issued.account_id}:root")
    caller = Principal(account=account, access_key_id=issued.access_key_id)
    services.ram.assume_role(caller, f"acs:ram::{issued.account_id}:role/ops", "s1", 900, None)
    worker = Worker(services.engine, concurrency=1, poll_interval=0.1)
    assert worker.housekeep() == (0, 0)
    with services.db.write() as conn:
        conn.execute(sts_credentials.update().values(expires_at=services.clock.now() - timedelta(hours=25)))
    assert worker.housekeep() == (0, 1)
    assert _count(services, sts_credentials) == 0
