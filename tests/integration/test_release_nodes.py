"""store.clusters.release_nodes: an operation's end reads the nodes it held and frees them in one
statement (UPDATE ... RETURNING), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import select, update

from hpcplane.store import clusters as cluster_store
from hpcplane.store.tables import nodes
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
