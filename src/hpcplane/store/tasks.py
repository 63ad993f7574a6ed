"""Tasks in the store: writing them, and the ListTasks read straight from SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hpcplane.domain.tasks import TASK_STATUSES, TASK_TYPES, TaskRow, TaskStatus, TaskType, TaskView
from hpcplane.store import events
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
    """Write the task, count it on its cluster and append its creation event, in the caller's
    transaction."""
    conn.execute(
        update(clusters).where(clusters.c.id == task.cluster_id).values(task_count=clusters.c.task_count + 1)
    )
    values: dict[str, Any] = {
        "task_id": task.task_id,
        "account_id": task.account_id,
        "cluster_id": task.cluster_id,
        "task_type": task.task_type.value,
        "status": task.status.value,
        "current_step": task.current_step,
        "total_steps": task.total_steps,
        "result": task.result,
        "errors": task.errors,
        "request": task.request,
    }
    conn.execute(
        insert(tasks).values(
            **values,
            created_at=now,
            updated_at=now,
            finished_at=task.finished_at,
            plan=task.plan,
            state=task.state,
            run_after=task.run_after,
            client_token=task.client_token,
            params_hash=task.params_hash,
            # The cluster's owning host (None for a provider any worker may act for): claim() filters on it.
            host=select(clusters.c.host).where(clusters.c.id == task.cluster_id).scalar_subquery(),
        )
    )
    events.record_created(conn, values, now)


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


@dataclass(frozen=True, slots=True)
class TaskScope:
    """What ListTasks checks before it may answer: the account's E-HPC flag and, when the account owns the
    cluster, the cluster's deletion time and its count of task rows."""

    ehpc_enabled: bool
    cluster_found: bool
    deleted_at: datetime | None
    task_count: int


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks and the number of all matches."""

    tasks: list[TaskView]
    total: int


@dataclass(frozen=True, slots=True)
class TaskRows:
    """One page of tasks as lean rows (TaskRow) and the number of all matches: ListTasks' hot path."""

    tasks: list[TaskRow]
    total: int


_COLUMNS = (
    "task_id, cluster_id, task_type, status, current_step, total_steps, result, errors, request, created_at"
)
_SCOPE = (
    "SELECT a.ehpc_enabled, c.id AS cid, c.deleted_at, c.task_count FROM accounts a"
    " LEFT OUTER JOIN clusters c ON c.id = ? AND c.account_id = a.id WHERE a.id = ?"
)
# The scope, the number of matches (when not the cluster's own count) and a page read from the start, in
# one statement: one round trip for the pages people read. The page's rows join only when the account
# owns the cluster, so nothing of another account's leaves the database.
_SCOPE_AND_PAGE = (
    "SELECT s.ehpc_enabled, s.cid, s.deleted_at, s.task_count, {count}, task_id, cluster_id, task_type,"
    " status, current_step, total_steps, result, errors, request{created}"
    " FROM (SELECT a.ehpc_enabled, c.id AS cid, c.deleted_at, c.task_count FROM accounts a"
    " LEFT OUTER JOIN clusters c ON c.id = ? AND c.account_id = a.id WHERE a.id = ?) s"
    " LEFT OUTER JOIN (SELECT seq, task_id, cluster_id, task_type, status, current_step, total_steps,"
    " result, errors, request, created_at FROM tasks WHERE cluster_id = ?{filter}"
    " ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?) t ON s.cid IS NOT NULL"
    " ORDER BY t.created_at DESC, t.seq DESC"
)
_COUNT_OWNED = "(SELECT COUNT(*) FROM tasks WHERE cluster_id = s.cid{filter})"
# The page's created_at is read back only for TaskViews: the lean rows leave it (and, on PostgreSQL, its
# parse into a datetime per row) in the database.
_CREATED = ", created_at"
# A page far from both ends of the order: the keys are found on the index alone (skipping visits no
# row), then the rows; after the scope (and count) in a statement of their own.
_COUNT = "SELECT COUNT(*) FROM tasks WHERE cluster_id = ?{filter}"
_PAGE = (
    "SELECT {columns} FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE cluster_id = ?{filter}"
    " ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY {order}"
)
_NEWEST_FIRST = "created_at DESC, seq DESC"
_OLDEST_FIRST = "created_at ASC, seq ASC"
_NEAR = 100
# The filters beside cluster_id: one task; the running ones; the running and recently ended ones.
_BY_ID = " AND task_id = ?"
_RUNNING = " AND finished_at IS NULL"
_CURRENT = " AND (finished_at IS NULL OR finished_at > ?)"


def list_tasks(
    driver: Driver,
    *,
    account_id: str,
    cluster_id: str,
    task_id: str | None,
    archived: bool,
    current_since: datetime | None,
    offset: int,
    limit: int,
) -> tuple[TaskScope | None, TaskPage]:
    """`list_task_rows` with each task as a TaskView (created_at parsed, enums made)."""
    scope, page = _list(
        driver,
        partial(_view, driver),
        account_id=account_id,
        cluster_id=cluster_id,
        task_id=task_id,
        archived=archived,
        current_since=current_since,
        offset=offset,
        limit=limit,
    )
    return scope, TaskPage(page.tasks, page.total)  # type: ignore[arg-type]


def list_task_rows(
    driver: Driver,
    *,
    account_id: str,
    cluster_id: str,
    task_id: str | None,
    archived: bool,
    current_since: datetime | None,
    offset: int,
    limit: int,
) -> tuple[TaskScope | None, TaskRows]:
    """`_list` with each task a lean TaskRow: no object per row, no time parsed."""
    return _list(
        driver,
        _lean,
        account_id=account_id,
        cluster_id=cluster_id,
        task_id=task_id,
        archived=archived,
        current_since=current_since,
        offset=offset,
        limit=limit,
    )


def _list(
    driver: Driver,
    convert: Callable[[Sequence[Any]], Any],
    *,
    account_id: str,
    cluster_id: str,
    task_id: str | None,
    archived: bool,
    current_since: datetime | None,
    offset: int,
    limit: int,
) -> tuple[TaskScope | None, TaskRows]:
    """What ListTasks checks (None: no such account) and, when the account owns the cluster, a page of
    its tasks, newest first (ties by insertion order). The caller must check the scope before answering.

    `task_id` selects one task whatever its state. Otherwise `archived` includes history; without it only
    current tasks count: those still running, and those that ended after `current_since` when given.
    With `archived` the total is the cluster's own count of its rows (`clusters.task_count`); otherwise it
    is counted on the index of the few tasks still running. A page within `_NEAR` rows of the start is
    read with the scope in one statement; a deeper one is read from the nearer end of the order, off the
    index, so PageNumber=999 of a long history costs what page 1 costs.
    """
    where, params = _filter(cluster_id, task_id, archived, current_since)
    own_count = archived and task_id is None
    if offset <= _NEAR:
        count = "NULL" if own_count else _COUNT_OWNED.format(filter=where)
        sql = _SCOPE_AND_PAGE.format(count=count, filter=where, created="" if convert is _lean else _CREATED)
        count_params = () if own_count else params[1:]
        rows = driver.rows(sql, (*count_params, cluster_id, account_id, *params, limit, offset))
        if not rows:
            return None, TaskRows(tasks=[], total=0)
        scope = _scope(driver, rows[0][:4])
        total = scope.task_count if own_count else int(rows[0][4] or 0)
        if convert is _lean:  # in one pass: no slice of each row, no call per row
            lean = [
                (r[5], r[6], TASK_TYPES[r[7]], TASK_STATUSES[r[8]], r[9], r[10], r[11], r[12], r[13])
                for r in rows
                if r[5] is not None
            ]
            return scope, TaskRows(lean, total)
        return scope, TaskRows([convert(row[5:]) for row in rows if row[5] is not None], total)
    row = driver.row(_SCOPE, (cluster_id, account_id))
    if row is None:
        return None, TaskRows(tasks=[], total=0)
    scope = _scope(driver, row)
    if not scope.cluster_found:
        return scope, TaskRows(tasks=[], total=0)
    total = scope.task_count if own_count else int(driver.row(_COUNT.format(filter=where), params)[0])
    if offset >= total:
        return scope, TaskRows(tasks=[], total=total)
    rows = _page_rows(driver, where, params, offset, min(limit, total - offset), total)
    return scope, TaskRows([convert(row) for row in rows], total)


def _scope(driver: Driver, row: Sequence[Any]) -> TaskScope:
    enabled, cid, deleted_at, task_count = row
    return TaskScope(bool(enabled), cid is not None, driver.time(deleted_at), task_count or 0)


def _lean(row: Sequence[Any]) -> TaskRow:
    """The row's first nine columns, type and status checked against their enums by a dict lookup."""
    task_id, cluster_id, task_type, status, current, total, result, errors, request = row[:9]
    return (
        task_id,
        cluster_id,
        TASK_TYPES[task_type],
        TASK_STATUSES[status],
        current,
        total,
        result,
        errors,
        request,
    )


def _view(driver: Driver, row: Sequence[Any]) -> TaskView:
    return TaskView(
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


def _page_rows(
    driver: Driver, where: str, params: tuple[object, ...], offset: int, limit: int, total: int
) -> list[Any]:
    """The rows [offset, offset + limit) of the newest-first order of `total` matches, read from the
    nearer end (oldest first, then reversed, for a page past the middle)."""
    from_end = total - offset - limit
    order = _NEWEST_FIRST if offset <= from_end else _OLDEST_FIRST
    sql = _PAGE.format(columns=_COLUMNS, filter=where, order=order)
    rows = driver.rows(sql, (*params, limit, min(offset, from_end)))
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
