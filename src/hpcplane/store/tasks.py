"""Tasks in the store: writing them, and the ListTasks read straight from SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, func, insert, or_, select, update

from hpcplane.domain.tasks import TaskStatus, TaskType, TaskView
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
    tasks.c.task_id,
    tasks.c.cluster_id,
    tasks.c.task_type,
    tasks.c.status,
    tasks.c.current_step,
    tasks.c.total_steps,
    tasks.c.result,
    tasks.c.errors,
    tasks.c.request,
    tasks.c.created_at,
)


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks and the number of all matches."""

    tasks: list[TaskView]
    total: int


def list_tasks(
    conn: Connection,
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
    is counted on an index of the few tasks still running. Every filter is on `cluster_id` (a cluster's
    tasks are its owner's), so counting and skipping deep pages read the index alone, never the rows.
    """
    where: list[ColumnElement[bool]] = [tasks.c.cluster_id == cluster_id]
    if task_id is not None:
        where.append(tasks.c.task_id == task_id)
    elif not archived and current_since is None:
        where.append(tasks.c.finished_at.is_(None))
    elif not archived:
        where.append(or_(tasks.c.finished_at.is_(None), tasks.c.finished_at > current_since))
    condition = and_(*where)
    if archived and task_id is None:
        total = cluster_task_count
    else:
        total = conn.execute(select(func.count()).select_from(tasks).where(condition)).scalar_one()
    if offset >= total:
        return TaskPage(tasks=[], total=total)
    # The page's keys first, from the index alone, then just those rows.
    keys = (
        select(tasks.c.seq)
        .where(condition)
        .order_by(tasks.c.created_at.desc(), tasks.c.seq.desc())
        .offset(offset)
        .limit(limit)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(*_COLUMNS).where(tasks.c.seq.in_(keys)).order_by(tasks.c.created_at.desc(), tasks.c.seq.desc())
    )
    views = [
        TaskView(
            task_id=row.task_id,
            cluster_id=row.cluster_id,
            task_type=TaskType(row.task_type),
            status=TaskStatus(row.status),
            current_step=row.current_step,
            total_steps=row.total_steps,
            result=row.result,
            errors=row.errors,
            request=row.request,
            created_at=row.created_at,
        )
        for row in rows
    ]
    return TaskPage(tasks=views, total=total)
