"""Autoscaling configurations in the store, with the autoscaler's memory between rounds."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hpcplane.store.tables import autoscale_configs, clusters


def get_config(conn: Connection, cluster_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(autoscale_configs.c.config).where(autoscale_configs.c.cluster_id == cluster_id)
    ).first()
    return json.loads(row.config) if row else None


def put_config(
    conn: Connection, cluster_id: str, account_id: str, config: dict[str, Any], now: datetime
) -> None:
    text = json.dumps(config, sort_keys=True)
    done = conn.execute(
        update(autoscale_configs)
        .where(autoscale_configs.c.cluster_id == cluster_id)
        .values(config=text, updated_at=now)
    )
    if done.rowcount == 0:
        conn.execute(
            insert(autoscale_configs).values(
                cluster_id=cluster_id, account_id=account_id, config=text, state="{}", updated_at=now
            )
        )


def enabled_clusters(conn: Connection) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(cluster, account, config, state) of every configuration that grows or shrinks."""
    rows = conn.execute(
        select(
            autoscale_configs.c.cluster_id,
            autoscale_configs.c.account_id,
            autoscale_configs.c.config,
            autoscale_configs.c.state,
        )
    )
    found = []
    for row in rows:
        config = json.loads(row.config)
        if config.get("EnableAutoGrow") or config.get("EnableAutoShrink"):
            found.append((row.cluster_id, row.account_id, config, json.loads(row.state or "{}")))
    return found


def put_state(conn: Connection, cluster_id: str, state: dict[str, Any]) -> None:
    conn.execute(
        update(autoscale_configs)
        .where(autoscale_configs.c.cluster_id == cluster_id)
        .values(state=json.dumps(state, sort_keys=True))
    )


def cluster_row(conn: Connection, cluster_id: str, account_id: str) -> dict[str, Any] | None:
    """The account's live cluster (its status and running task), read without a lock."""
    row = (
        conn.execute(
            select(clusters).where(
                clusters.c.id == cluster_id,
                clusters.c.account_id == account_id,
                clusters.c.deleted_at.is_(None),
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None
