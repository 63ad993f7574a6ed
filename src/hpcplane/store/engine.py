"""The engine's SQL: claim due tasks under a lease, advance them fenced on it, heartbeat, purge history.

The task row is the only queue. A claim bumps `lease_token`; every later write of that holder says
`WHERE lease_token = :token`, so a holder whose lease was taken over writes nothing (it is fenced).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, or_, select, text, tuple_, update

from hpcplane.domain.tasks import TaskType
from hpcplane.store import events
from hpcplane.store.db import Driver
from hpcplane.store.tables import clusters, tasks

NOTIFY_CHANNEL = "hpcplane_tasks"


@dataclass
class Lease:
    """A claimed task, as the worker that holds it sees it."""

    seq: int
    task_id: str
    account_id: str
    cluster_id: str
    task_type: TaskType
    plan: list[str]
    state: dict[str, Any]
    request: dict[str, Any]
    current_step: int
    total_steps: int
    token: int
    lost_attempts: int  # leases lost over the task's life (an operator's diagnostic)
    errors: list[dict[str, str]]
    taken_over: bool = False  # claimed from a holder whose lease had expired
    lost_streak: int = 0  # leases lost since the task's last recorded step: what max_attempts bounds
    state_json: str = "{}"  # `state` as the row holds it (read at the claim, then as each step wrote it)


_LEASE_COLUMNS = (
    tasks.c.seq,
    tasks.c.task_id,
    tasks.c.account_id,
    tasks.c.cluster_id,
    tasks.c.task_type,
    tasks.c.plan,
    tasks.c.state,
    tasks.c.request,
    tasks.c.current_step,
    tasks.c.total_steps,
    tasks.c.lease_token,
    tasks.c.lost_attempts,
    tasks.c.lost_streak,
    tasks.c.errors,
)


def _due(now: datetime) -> Any:
    return and_(
        tasks.c.finished_at.is_(None),
        tasks.c.run_after <= now,
        or_(tasks.c.lease_owner.is_(None), tasks.c.lease_expires_at < now),
    )


def claim(
    conn: Connection,
    *,
    owner: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    postgres: bool,
    task_id: str | None = None,
    host: str | None = None,
) -> list[Lease]:
    """Take up to `limit` due tasks (or the one `task_id`); a reclaimed expired lease counts as lost, in
    the task's life (`lost_attempts`) and since its last recorded step (`lost_streak`, which each recorded
    step resets).
    Only tasks bound to no host, or to `host` (a local cluster's owner), are taken."""
    candidates = (
        select(tasks.c.seq, tasks.c.lease_owner)
        .where(_due(now), or_(tasks.c.host.is_(None), tasks.c.host == host))
        .order_by(tasks.c.run_after)
        .limit(limit)
    )
    if task_id is not None:
        candidates = candidates.where(tasks.c.task_id == task_id)
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    found = conn.execute(candidates).all()
    seqs = [row.seq for row in found]
    held = {row.seq for row in found if row.lease_owner is not None}
    if not seqs:
        return []
    lost = case((tasks.c.lease_owner.is_(None), 0), else_=1)  # the lease it takes had expired
    rows = conn.execute(
        update(tasks)
        .where(tasks.c.seq.in_(seqs), _due(now))
        .values(
            lease_owner=owner,
            lease_token=tasks.c.lease_token + 1,
            lease_expires_at=lease_until,
            lost_attempts=tasks.c.lost_attempts + lost,
            lost_streak=tasks.c.lost_streak + lost,
        )
        .returning(*_LEASE_COLUMNS)
    ).all()
    return [
        Lease(
            seq=row.seq,
            task_id=row.task_id,
            account_id=row.account_id,
            cluster_id=row.cluster_id,
            task_type=TaskType(row.task_type),
            plan=json.loads(row.plan),
            state=json.loads(row.state),
            state_json=row.state,
            request=json.loads(row.request),
            current_step=row.current_step,
            total_steps=row.total_steps,
            token=row.lease_token,
            lost_attempts=row.lost_attempts,
            lost_streak=row.lost_streak,
            errors=json.loads(row.errors),
            taken_over=row.seq in held,
        )
        for row in rows
    ]


@lru_cache(maxsize=64)
def _advance_sql(columns: tuple[str, ...]) -> str:
    """UPDATE tasks SET <columns> WHERE seq, owner and token match: the engine's hot path goes straight to
    the driver, as building a statement costs more than running it."""
    unknown = set(columns) - set(tasks.c.keys())
    if unknown:
        raise ValueError(f"not columns of tasks: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in columns)
    return f"UPDATE tasks SET {assignments} WHERE seq = ? AND lease_owner = ? AND lease_token = ?"  # noqa: S608 (names checked above, values bound)


def advance(driver: Driver, lease: Lease, owner: str, values: dict[str, Any]) -> bool:
    """Record a step's progress and renew the lease in one UPDATE, fenced on the lease token, with the
    task's event (store/events.py) in the same transaction.

    False when the lease was lost: the caller must roll back the step's effects with it.
    """
    columns = tuple(sorted(values))
    params = [values[name] for name in columns]
    kind = "ended" if "finished_at" in values else "progress"
    return events.advance_with_event(
        driver, _advance_sql(columns), columns, params, [lease.seq, owner, lease.token], kind
    )


def advance_many(
    driver: Driver, owner: str, steps: list[tuple[Lease, dict[str, Any]]], *, ends: bool = False
) -> set[int]:
    """Record one step of each of several tasks as `advance` would, each in its own row, fenced on its own
    lease, with its own event, in one transaction (one statement on PostgreSQL for each set of columns);
    returns the seqs of the tasks whose lease held. A task's last step (`finished_at` set, an "ended"
    event) only with `ends`: in the transaction that holds its effects (engine/rounds.py, Writes)."""
    groups: dict[tuple[str, ...], list[tuple[list[Any], list[Any]]]] = {}
    for lease, values in steps:
        if "finished_at" in values and not ends:
            raise ValueError("a task's last step is recorded with its effects, in their transaction")
        columns = tuple(sorted(values))
        groups.setdefault(columns, []).append(
            ([values[name] for name in columns], [lease.seq, owner, lease.token])
        )
    held: set[int] = set()
    for columns, rows in groups.items():
        kind = "ended" if "finished_at" in columns else "progress"
        held |= events.advance_many_with_events(driver, _advance_sql(columns), columns, rows, kind)
    return held


def heartbeat(
    conn: Connection, leases: list[tuple[int, int]], owner: str, until: datetime
) -> list[tuple[int, int]]:
    """Extend the leases (seq, token) this owner still holds, in one statement (a worker thread holds many
    leases at once, Engine.run_many); returns those it extended.

    On PostgreSQL a row locked by a step's open transaction is skipped, not waited for: that step renews
    the lease itself when it commits, and waiting could deadlock with it (the round's transaction locks
    its rows over several statements, in another order), stalling both for `deadlock_timeout`."""
    if not leases:
        return []
    held = tuple_(tasks.c.seq, tasks.c.lease_token).in_(leases)
    mine = and_(held, tasks.c.lease_owner == owner)
    if conn.dialect.name == "postgresql":
        free = select(tasks.c.seq).where(mine).with_for_update(skip_locked=True)
        mine = tasks.c.seq.in_(free.scalar_subquery())
    rows = conn.execute(
        update(tasks).where(mine).values(lease_expires_at=until).returning(tasks.c.seq, tasks.c.lease_token)
    ).all()
    kept = {(row.seq, row.lease_token) for row in rows}
    return [lease for lease in leases if lease in kept]


def next_due(conn: Connection) -> datetime | None:
    """When the earliest unfinished, unleased task becomes due."""
    value: datetime | None = conn.execute(
        select(func.min(tasks.c.run_after)).where(
            tasks.c.finished_at.is_(None), tasks.c.lease_owner.is_(None)
        )
    ).scalar_one_or_none()
    return value


def task_finished(conn: Connection, task_id: str) -> bool:
    return (
        conn.execute(select(tasks.c.finished_at).where(tasks.c.task_id == task_id)).scalar_one_or_none()
        is not None
    )


def purge_history(conn: Connection, before: datetime) -> int:
    """Delete tasks that ended before `before` (the retention period), and uncount them on their clusters.

    The counts come from the rows this DELETE removed, so two purges racing never uncount a row twice."""
    deleted = Counter(
        conn.execute(
            delete(tasks).where(tasks.c.finished_at < before).returning(tasks.c.cluster_id)
        ).scalars()
    )
    for cluster_id, count in sorted(deleted.items()):
        conn.execute(
            update(clusters)
            .where(clusters.c.id == cluster_id)
            .values(task_count=clusters.c.task_count - count)
        )
    return sum(deleted.values())


def notify(conn: Connection) -> None:
    """Wake PostgreSQL workers LISTENing for new tasks (delivered when the transaction commits)."""
    conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
