"""store/tasks.py at the store itself: the ClientToken lookup, every field of a listed task, the scope."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, update

from hpcplane.domain.tasks import TaskStatus, TaskType, TaskView
from hpcplane.store.db import Database
from hpcplane.store.tables import accounts, clusters
from hpcplane.store.tasks import NewTask, TaskPage, TaskScope, TokenHit, find_by_client_token, insert_task
from hpcplane.store.tasks import list_tasks as store_list_tasks
from tests.integration.conftest import START

DEEP = 150  # past the first hundred rows: the scope is read alone, then the page from the nearer end


def add_account(
    db: Database, account: str, *, enabled: bool = True, clusters_owned: tuple[str, ...] = ()
) -> None:
    with db.write() as conn:
        conn.execute(
            insert(accounts).values(id=account, name=account, ehpc_enabled=enabled, created_at=START)
        )
        for cluster in clusters_owned:
            conn.execute(
                insert(clusters).values(
                    id=cluster,
                    account_id=account,
                    region_id="cn-hangzhou",
                    name=cluster,
                    status="running",
                    created_at=START,
                    updated_at=START,
                )
            )


def new_task(task_id: str, account: str, cluster: str, **fields: object) -> NewTask:
    values: dict[str, object] = {
        "task_type": TaskType.ADD_COMPUTES,
        "total_steps": 9,
        "request": '{"Action": "AddNodes"}',
        **fields,
    }
    return NewTask(task_id=task_id, account_id=account, cluster_id=cluster, **values)  # type: ignore[arg-type]


def add(db: Database, *tasks: NewTask, seconds: float = 0) -> None:
    with db.write() as conn:
        for task in tasks:
            insert_task(conn, task, START + timedelta(seconds=seconds))


def read(
    db: Database,
    account: str,
    cluster: str,
    *,
    offset: int = 0,
    limit: int = 50,
    archived: bool = True,
    task_id: str | None = None,
) -> tuple[TaskScope | None, TaskPage]:
    with db.driver() as driver:
        return store_list_tasks(
            driver,
            account_id=account,
            cluster_id=cluster,
            task_id=task_id,
            archived=archived,
            current_since=None,
            offset=offset,
            limit=limit,
        )


def lookup(db: Database, account: str, task_type: TaskType, token: str) -> TokenHit | None:
    with db.read() as conn:
        return find_by_client_token(conn, account, task_type, token)


# --- the ClientToken lookup ----------------------------------------------------------------------


def test_client_token_lookup_returns_every_field_of_the_earlier_task(db: Database) -> None:
    """A token finds the task its account created with it, with its id, cluster, params hash and state."""
    add_account(db, "A", clusters_owned=("CA",))
    add(db, new_task("t-a", "A", "CA", client_token="tok", params_hash="hash-a", state='{"step": 3}'))
    assert lookup(db, "A", TaskType.ADD_COMPUTES, "tok") == TokenHit("t-a", "CA", "hash-a", '{"step": 3}')


def test_client_token_lookup_is_per_account_type_and_token(db: Database) -> None:
    """The same token under another account, another task type or another token finds nothing of it."""
    add_account(db, "A", clusters_owned=("CA",))
    add_account(db, "B", clusters_owned=("CB",))
    add(
        db,
        new_task("t-a", "A", "CA", client_token="tok", params_hash="hash-a"),
        new_task("t-other", "A", "CA", client_token="other", params_hash="hash-o"),
        new_task("t-b", "B", "CB", client_token="tok", params_hash="hash-b"),
        new_task("t-none", "A", "CA"),
    )
    hit_a, hit_b = (
        lookup(db, "A", TaskType.ADD_COMPUTES, "tok"),
        lookup(db, "B", TaskType.ADD_COMPUTES, "tok"),
    )
    assert (hit_a and hit_a.task_id, hit_b and hit_b.task_id) == ("t-a", "t-b")
    other = lookup(db, "A", TaskType.ADD_COMPUTES, "other")
    assert other is not None
    assert (other.task_id, other.params_hash) == ("t-other", "hash-o")
    assert lookup(db, "A", TaskType.STOP_COMPUTES, "tok") is None
    assert lookup(db, "A", TaskType.ADD_COMPUTES, "unknown") is None
    assert lookup(db, "C", TaskType.ADD_COMPUTES, "tok") is None


# --- every field of a listed task --------------------------------------------------------------


def test_listed_task_carries_every_column_near_and_deep(db: Database) -> None:
    """Each TaskView field comes from its own column (CurrentStep is not TotalSteps or Status), both on a
    page read with the scope and on a deep page read alone."""
    add_account(db, "A", clusters_owned=("CA",))
    special = new_task(
        "t-special",
        "A",
        "CA",
        task_type=TaskType.STOP_COMPUTES,
        status=TaskStatus.FAILED,
        current_step=4,
        total_steps=7,
        result='{"Instances": []}',
        errors='[{"Code": "EcsError"}]',
        request='{"Action": "StopNodes"}',
        finished_at=START,
    )
    add(db, special, seconds=-1)  # the oldest: last in the newest-first order
    add(db, *(new_task(f"t-{i}", "A", "CA") for i in range(DEEP)))
    expected = TaskView(
        task_id="t-special",
        cluster_id="CA",
        task_type=TaskType.STOP_COMPUTES,
        status=TaskStatus.FAILED,
        current_step=4,
        total_steps=7,
        result='{"Instances": []}',
        errors='[{"Code": "EcsError"}]',
        request='{"Action": "StopNodes"}',
        created_at=START - timedelta(seconds=1),
    )
    _, by_id = read(db, "A", "CA", task_id="t-special")
    assert by_id.tasks == [expected]
    _, deep = read(db, "A", "CA", offset=DEEP, limit=5)
    assert (deep.tasks, deep.total) == ([expected], DEEP + 1)
    _, deep_newest_first = read(db, "A", "CA", offset=DEEP - 40, limit=1)
    assert [t.task_id for t in deep_newest_first.tasks] == ["t-39"]


# --- the scope: unknown accounts, clusters not owned, deep pages -----------------------------------


def test_unknown_account_has_no_scope_near_or_deep(db: Database) -> None:
    """An account that does not exist gets no scope and an empty page, on the first page and a deep one."""
    add_account(db, "A", clusters_owned=("CA",))
    add(db, *(new_task(f"t-{i}", "A", "CA") for i in range(3)))
    for offset in (0, DEEP):
        assert read(db, "nobody", "CA", offset=offset) == (None, TaskPage(tasks=[], total=0))


def test_cluster_not_owned_shows_nothing_near_or_deep(db: Database) -> None:
    """Another account's cluster: a scope that says not found, no task and a total of 0, at any depth, for
    the history and the current tasks alike."""
    add_account(db, "A", clusters_owned=("CA",))
    add_account(db, "B", enabled=False)
    add(db, *(new_task(f"t-{i}", "A", "CA") for i in range(DEEP + 20)))
    for offset in (0, DEEP):
        for archived in (True, False):
            scope, page = read(db, "B", "CA", offset=offset, archived=archived)
            assert scope == TaskScope(ehpc_enabled=False, cluster_found=False, deleted_at=None, task_count=0)
            assert page == TaskPage(tasks=[], total=0)


def test_scope_reports_the_owned_clusters_flag_deletion_and_count(db: Database) -> None:
    """The scope carries the account's E-HPC flag, the cluster's deletion time and its count of rows."""
    add_account(db, "A", clusters_owned=("CA",))
    add(db, *(new_task(f"t-{i}", "A", "CA") for i in range(DEEP + 2)))
    with db.write() as conn:
        conn.execute(update(clusters).where(clusters.c.id == "CA").values(deleted_at=START))
    for offset in (0, DEEP):
        scope, page = read(db, "A", "CA", offset=offset, limit=1)
        assert scope == TaskScope(
            ehpc_enabled=True, cluster_found=True, deleted_at=START, task_count=DEEP + 2
        )
        assert page.total == DEEP + 2
        assert len(page.tasks) == 1


def test_deep_page_past_the_end_is_empty_with_the_total(db: Database) -> None:
    """A page past the last match is empty but still counts every match, archived or running only."""
    add_account(db, "A", clusters_owned=("CA",))
    add(db, *(new_task(f"t-{i}", "A", "CA") for i in range(DEEP - 30)))
    add(db, new_task("t-done", "A", "CA", status=TaskStatus.SUCCESS, finished_at=START))
    assert read(db, "A", "CA", offset=DEEP)[1] == TaskPage(tasks=[], total=DEEP - 29)
    assert read(db, "A", "CA", offset=DEEP, archived=False)[1] == TaskPage(tasks=[], total=DEEP - 30)
    _, last = read(db, "A", "CA", offset=DEEP - 31, limit=5, archived=False)
    assert ([t.task_id for t in last.tasks], last.total) == (["t-0"], DEEP - 30)


def test_archived_total_is_the_clusters_own_count(db: Database) -> None:
    """With Archived the total is the cluster's task_count column (kept by insert_task), read, not
    counted; the current tasks are counted on their rows. Near the start and deep alike."""
    add_account(db, "A", clusters_owned=("CA",))
    add(db, *(new_task(f"t-{i}", "A", "CA") for i in range(3)))
    with db.write() as conn:
        conn.execute(update(clusters).where(clusters.c.id == "CA").values(task_count=DEEP + 50))
    for offset in (0, DEEP):
        assert read(db, "A", "CA", offset=offset)[1].total == DEEP + 50
        assert read(db, "A", "CA", offset=offset, archived=False)[1].total == 3


def test_insert_task_writes_the_engines_columns(db: Database) -> None:
    """The plan, step state, due time, end time, ClientToken and params hash a service gives are the
    row's; the creation and update times are `now`; the cluster counts the task."""
    add_account(db, "A", clusters_owned=("CA",))
    due = START + timedelta(seconds=30)
    ended = START + timedelta(seconds=60)
    plan = '[{"step": "a"}, {"step": "b"}]'
    add(
        db,
        new_task(
            "t-1", "A", "CA", plan=plan, state='{"n": 1}', run_after=due, finished_at=ended,
            client_token="tok", params_hash="h",
        ),
        seconds=5,
    )  # fmt: skip
    with db.driver() as driver:
        row = driver.execute(
            "SELECT plan, state, run_after, finished_at, client_token, params_hash, created_at, updated_at"
            " FROM tasks WHERE task_id = ?",
            ("t-1",),
        ).fetchone()
        times = [driver.time(value) for value in row[2:4]] + [driver.time(value) for value in row[6:8]]
    assert tuple(row[:2]) == (plan, '{"n": 1}')
    assert tuple(row[4:6]) == ("tok", "h")
    assert times == [due, ended, START + timedelta(seconds=5), START + timedelta(seconds=5)]
    scope, _ = read(db, "A", "CA")
    assert scope is not None
    assert scope.task_count == 1
