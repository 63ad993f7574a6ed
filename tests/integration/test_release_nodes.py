"""store.clusters.release_nodes: an operation's end reads the nodes it held and frees them in one
statement (UPDATE ... RETURNING), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from hpcplane.store import clusters as cluster_store
from hpcplane.store.tables import clusters, nodes
from tests.integration.test_engine_steps import Build, build, hosts, principal, seeded

__all__ = ["build"]  # the fixture, shared with test_engine_steps


def test_release_reads_the_live_nodes_in_order_and_frees_only_those(build: Build) -> None:
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who, computes=3)
    other = seeded(services, who, computes=1)
    by_name = hosts(services, cluster_id)
    gone = by_name["compute2"].id
    with services.db.write() as conn:
        conn.execute(update(nodes).values(task_id="T"))
        conn.execute(update(nodes).where(nodes.c.id == gone).values(deleted_at=services.clock.now()))
    chosen = [by_name["compute1"].id, by_name["compute0"].id, gone]
    with services.db.write() as conn:
        before = cluster_store.cluster_nodes(conn, cluster_id, chosen)
        released = cluster_store.release_nodes(conn, cluster_id, chosen)
        assert cluster_store.release_nodes(conn, cluster_id, []) == []
    # The live ones of those asked for, in creation order, as they are after the release.
    assert [n["hostname"] for n in released] == ["compute0", "compute1"]
    assert released == [{**n, "task_id": None} for n in before]
    with services.db.read() as conn:
        held = dict(conn.execute(select(nodes.c.id, nodes.c.task_id)).all())
    assert {node_id for node_id, task in held.items() if task is None} == {
        by_name["compute0"].id,
        by_name["compute1"].id,
    }
    assert held[gone] == "T"
    assert all(held[n.id] == "T" for n in hosts(services, other).values())
    with services.db.write() as conn:
        live = cluster_store.cluster_nodes(conn, cluster_id)
        everything = cluster_store.release_nodes(conn, cluster_id)
    assert len(everything) == len(by_name) - 1  # every live node of the cluster, not the deleted one
    assert everything == [{**n, "task_id": None} for n in live]


def test_release_sets_the_clusters_columns_in_the_same_call_and_only_that_clusters(build: Build) -> None:
    """`cluster=`: the cluster's columns set with the release (one statement on PostgreSQL), also when
    no node is asked for; the other cluster keeps its own; an unknown column is refused before anything
    is written."""
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who, computes=2)
    other = seeded(services, who, computes=1)
    with services.db.write() as conn:
        conn.execute(update(nodes).values(task_id="T"))
        conn.execute(update(clusters).values(task_id="T"))
    ended = services.clock.now()
    chosen = [n.id for n in hosts(services, cluster_id).values()]
    with services.db.write() as conn:
        released = cluster_store.release_nodes(
            conn, cluster_id, chosen, cluster={"status": "stopped", "task_id": None, "updated_at": ended}
        )
        assert cluster_store.release_nodes(conn, other, [], cluster={"description": "untouched nodes"}) == []
    assert sorted(n["id"] for n in released) == sorted(chosen)
    with services.db.read() as conn:
        rows = {r.id: r for r in conn.execute(select(clusters))}
        held = dict(conn.execute(select(nodes.c.id, nodes.c.task_id)).all())
    assert (rows[cluster_id].status, rows[cluster_id].task_id, rows[cluster_id].updated_at) == (
        "stopped",
        None,
        ended,
    )
    assert (rows[other].status, rows[other].task_id, rows[other].description) == (
        "running",
        "T",
        "untouched nodes",
    )
    assert all(held[node_id] is None for node_id in chosen)
    assert all(held[n.id] == "T" for n in hosts(services, other).values())
    with pytest.raises(ValueError, match="not columns of clusters"), services.db.write() as conn:
        cluster_store.release_nodes(conn, other, None, cluster={"no_such_column": 1})
    assert all(held[n.id] == "T" for n in hosts(services, other).values())
    with services.db.read() as conn:
        assert all(
            task == "T"
            for _, task in conn.execute(
                select(nodes.c.id, nodes.c.task_id).where(nodes.c.cluster_id == other)
            )
        )
