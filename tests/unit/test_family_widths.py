"""Every text parameter that reaches a column is bounded by exactly that column's width."""

from __future__ import annotations

from sqlalchemy import String

from hpcplane.api.actions import templates
from hpcplane.store.tables import job_templates


def test_template_fields_fit_their_columns() -> None:
    """CreateJobTemplate/EditJobTemplate text fields: max_length == String(n) of the column."""
    for wire, (column, width) in templates.TEXT_FIELDS.items():
        kind = job_templates.c[column].type
        assert isinstance(kind, String), wire
        assert kind.length == width, wire


def test_user_and_queue_columns_hold_what_the_readers_accept() -> None:
    """User names (30), groups, hashes; queue names (63) and their settings fit their columns."""
    from hpcplane.services.passwords import hash_password
    from hpcplane.store.tables import cluster_queues, cluster_users

    widths = {
        (cluster_users, "name"): 30,
        (cluster_queues, "name"): 63,
        (cluster_queues, "compute_instance_type"): 256,
        (cluster_queues, "deployment_set_id"): 64,
        (cluster_queues, "resource_group_id"): 64,
    }
    for (table, column), width in widths.items():
        kind = table.c[column].type
        assert isinstance(kind, String)
        assert kind.length == width, column
    group = cluster_users.c.user_group.type
    assert isinstance(group, String)
    assert group.length is not None
    assert group.length >= len("wheel")
    digest = cluster_users.c.password_hash.type
    assert isinstance(digest, String)
    assert digest.length is not None
    assert len(hash_password("x" * 30)) <= digest.length
