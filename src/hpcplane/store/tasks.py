"""Tasks in the store: writing them, and the ListTasks read straight from SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hpcplane.domain.tasks import TaskStatus, TaskType, TaskView
from hpcplane.store.db import Driver
from hpcplane.store.tables import clusters, tasks


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task row as a service creates it."""

    task_id: str
    account_id: str
    cluster_id: str
    task_type: TaskType
    total_steps: int
    request: str
    status: TaskStatus = TaskStatus.PROCESSING
    current_step: int = 0
    result: str = "{}"
    errors: str = "[]"
    finished_at: datetime | None = None
    plan: str = "[]"
    state: str = "{}"
    run_after: datetime | None = None
    client_token: str | None = None
    params_hash: str | None = None


def insert_task(conn: Connection, task: NewTask, now: datetime) -> None:
    """Write the task and count it on its cluster, in the caller's transaction."""
    conn.execute(
        update(clusters).where(clusters.c.id == task.cluster_id).values(task_count=clusters.c.task_count + 1)
    )
    conn.execute(
        insert(tasks).values(
            task_id=task.task_id,
            account_id=task.account_id,
            cluster_id=task.cluster_id,
            task_type=task.task_type.value,
            status=task.status.value,
            current_step=task.current_step,
            total_steps=task.total_steps,
            result=task.result,
            errors=task.errors,
            request=task.request,
            created_at=now,
            updated_at=now,
            finished_at=task.finished_at,
            plan=task.plan,
            state=task.state,
            run_after=task.run_after,
            client_token=task.client_token,
            params_hash=task.params_hash,
        )
    )


@dataclass(frozen=True, slots=True)
class TokenHit:
    """The task an earlier call with the same ClientToken created."""

    task_id: str
    cluster_id: str
    params_hash: str | None
    state: str


def find_by_client_token(
    conn: Connection, account_id: str, task_type: TaskType, token: str
) -> TokenHit | None:
    row = conn.execute(
        select(tasks.c.task_id, tasks.c.cluster_id, tasks.c.params_hash, tasks.c.state).where(
            tasks.c.account_id == account_id,
            tasks.c.task_type == task_type.value,
            tasks.c.client_token == token,
        )
    ).first()
    return TokenHit(row.task_id, row.cluster_id, row.params_hash, row.state) if row else None


_COLUMNS = (
    "task_id, cluster_id, task_type, status, current_step, total_steps, result, errors, request, created_at"
)
# A page near the start of the order: read straight off the index, rows fetched as they come.
_PAGE_NEAR = "SELECT {columns} FROM tasks WHERE cluster_id = ?{filter} ORDER BY {order} LIMIT ? OFFSET ?"
# A page far into it: the keys are found on the index alone (skipping visits no row), then the rows.
_PAGE_FAR = (
    "SELECT {columns} FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE cluster_id = ?{filter}"
    " ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY {order}"
)
_NEWEST_FIRST = "created_at DESC, seq DESC"
_OLDEST_FIRST = "created_at ASC, seq ASC"
_FAR = 100
_COUNT = "SELECT COUNT(*) FROM tasks WHERE cluster_id = ?{filter}"
# The filters beside cluster_id: one task; the running ones; the running and recently ended ones.
_BY_ID = " AND task_id = ?"
_RUNNING = " AND finished_at IS NULL"
_CURRENT = " AND (finished_at IS NULL OR finished_at > ?)"


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks and the number of all matches."""

    tasks: list[TaskView]
    total: int


def list_tasks(
    driver: Driver,
    *,
    cluster_id: str,
    task_id: str | None,
    archived: bool,
    current_since: datetime | None,
    offset: int,
    limit: int,
    cluster_task_count: int,
) -> TaskPage:
    """A cluster's tasks, newest first (ties by insertion order); the caller has checked it owns the cluster.

    `task_id` selects one task whatever its state. Otherwise `archived` includes history; without it only
    current tasks count: those still running, and those that ended after `current_since` when given.
    With `archived` the total is the cluster's own count of its rows (`cluster_task_count`); otherwise it
    is counted on the index of the few tasks still running. Every filter is on `cluster_id` (a cluster's
    tasks are its owner's), so counting and skipping to a deep page read the index alone, never the rows.
    """
    where, params = _filter(cluster_id, task_id, archived, current_since)
    if archived and task_id is None:
        total = cluster_task_count
    else:
        total = int(driver.execute(_COUNT.format(filter=where), params).fetchone()[0])
    if offset >= total:
        return TaskPage(tasks=[], total=total)
    rows = _page_rows(driver, where, params, offset, min(limit, total - offset), total)
    views = [
        TaskView(
            task_id=row[0],
            cluster_id=row[1],
            task_type=TaskType(row[2]),
            status=TaskStatus(row[3]),
            current_step=row[4],
            total_steps=row[5],
            result=row[6],
            errors=row[7],
            request=row[8],
            created_at=driver.time(row[9]),  # type: ignore[arg-type]
        )
        for row in rows
    ]
    return TaskPage(tasks=views, total=total)


def _page_rows(
    driver: Driver, where: str, params: tuple[object, ...], offset: int, limit: int, total: int
) -> list[Any]:
    """The rows [offset, offset + limit) of the newest-first order of `total` matches.

    A page past the middle is read from the other end (oldest first, then reversed), so a deep page costs
    what the page as far from the end costs: PageNumber=999 of a long history is as cheap as page 1.
    """
    from_end = total - offset - limit
    order = _NEWEST_FIRST if offset <= from_end else _OLDEST_FIRST
    skip = min(offset, from_end)
    sql = (_PAGE_FAR if skip > _FAR else _PAGE_NEAR).format(columns=_COLUMNS, filter=where, order=order)
    rows = driver.execute(sql, (*params, limit, skip)).fetchall()
    return rows if order == _NEWEST_FIRST else rows[::-1]


def _filter(
    cluster_id: str, task_id: str | None, archived: bool, current_since: datetime | None
) -> tuple[str, tuple[object, ...]]:
    if task_id is not None:
        return _BY_ID, (cluster_id, task_id)
    if archived:
        return "", (cluster_id,)
    if current_since is None:
        return _RUNNING, (cluster_id,)
    return _CURRENT, (cluster_id, current_since)
