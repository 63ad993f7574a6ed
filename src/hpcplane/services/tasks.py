"""The ListTasks read side, and recording tasks (used by operations and, until they land, by tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hpcplane import ids
from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import ClusterNotFound, NotEnabled
from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.store import tasks as task_store
from hpcplane.store.db import Database
from hpcplane.store.tasks import NewTask, TaskRows


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """The validated parameters of one ListTasks call."""

    cluster_id: str
    page_number: int = 1
    page_size: int = 10
    task_id: str | None = None
    archived: bool = False


class TaskReader:
    """Answers ListTasks straight from SQL, after the account and cluster checks."""

    def __init__(
        self, db: Database, clock: Clock, *, archive_delay: float = 0.0, deleted_cluster_grace: float = 3600.0
    ) -> None:
        self._db = db
        self._clock = clock
        self._archive_delay = archive_delay
        self._grace = timedelta(seconds=deleted_cluster_grace)

    def list_tasks(self, principal: Principal, query: TaskQuery) -> TaskRows:
        now = self._clock.now()
        current_since = None
        if self._archive_delay > 0:
            current_since = now - timedelta(seconds=self._archive_delay)
        with self._db.driver() as driver:
            scope, page = task_store.list_task_rows(
                driver,
                account_id=principal.account.id,
                cluster_id=query.cluster_id,
                task_id=query.task_id,
                archived=query.archived,
                current_since=current_since,
                offset=(query.page_number - 1) * query.page_size,
                limit=query.page_size,
            )
        if scope is None or not scope.ehpc_enabled:
            raise NotEnabled()
        # A deleted cluster's tasks stay readable for a grace period, so DeleteCluster can be watched.
        if not scope.cluster_found or (scope.deleted_at is not None and scope.deleted_at < now - self._grace):
            raise ClusterNotFound()
        return page


def request_json(request_id: str, uid: str, cluster_id: str, params: dict[str, Any]) -> str:
    """The Request field of a task: who asked, for which cluster, with which parameters."""
    return json.dumps(
        {"requestId": request_id, "uid": uid, "clusterId": cluster_id, **params},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def record_task(
    db: Database,
    clock: Clock,
    *,
    account_id: str,
    cluster_id: str,
    task_type: TaskType,
    total_steps: int,
    status: TaskStatus = TaskStatus.PROCESSING,
    current_step: int = 0,
    result: str = "{}",
    errors: str = "[]",
    params: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> str:
    """Write one task row as it would stand at some point of its life; returns its TaskId."""
    task_id = ids.task_id()
    now = created_at or clock.now()
    task = NewTask(
        task_id=task_id,
        account_id=account_id,
        cluster_id=cluster_id,
        task_type=task_type,
        total_steps=total_steps,
        request=request_json(ids.request_id(), account_id, cluster_id, params or {}),
        status=status,
        current_step=current_step,
        result=result,
        errors=errors,
        finished_at=now if status.terminal else None,
    )
    with db.write() as conn:
        task_store.insert_task(conn, task, now)
    return task_id
