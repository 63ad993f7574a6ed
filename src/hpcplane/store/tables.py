"""The schema, as SQLAlchemy Core tables; Alembic migrations create it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from hpcplane.store.types import UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("ehpc_enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UtcDateTime, nullable=False),
)

ram_users = Table(
    "ram_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_id", "name"),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(32), ForeignKey("ram_users.id", ondelete="CASCADE"), nullable=True),
    Column("secret_enc", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "account_id"),
)

clusters = Table(
    "clusters",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("region_id", String(32), nullable=False),
    Column("zone_id", String(64), nullable=False, server_default=""),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("status", String(32), nullable=False),
    Column("os_tag", String(128), nullable=False, server_default=""),
    Column("image_id", String(128), nullable=False, server_default=""),
    Column("image_owner_alias", String(32), nullable=False, server_default="system"),
    Column("base_os", String(64), nullable=False, server_default=""),
    Column("scheduler_type", String(32), nullable=False, server_default="pbs"),
    Column("deploy_mode", String(32), nullable=False, server_default="Standard"),
    Column("ha_enable", Boolean, nullable=False, server_default=text("false")),
    Column("account_type", String(32), nullable=False, server_default="nis"),
    Column("vpc_id", String(64), nullable=False, server_default=""),
    Column("vswitch_id", String(64), nullable=False, server_default=""),
    Column("security_group_id", String(64), nullable=False, server_default=""),
    Column("client_version", String(32), nullable=False, server_default="2.0.0"),
    Column("location", String(32), nullable=False, server_default="PublicCloud"),
    Column("ecs_charge_type", String(32), nullable=False, server_default="PostPaid"),
    Column("key_pair_name", String(128), nullable=False, server_default=""),
    Column("manager_instance_type", String(64), nullable=False, server_default=""),
    Column("login_instance_type", String(64), nullable=False, server_default=""),
    Column("compute_instance_type", String(64), nullable=False, server_default=""),
    Column("extra", Text, nullable=False, server_default="{}"),
    Column("client_token", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime, nullable=True),
    # The cluster-level task (create, start, stop, delete) now running on it, if any.
    Column("task_id", String(64), nullable=True),
    # How many task rows the cluster has (kept with every insert and purge): ListTasks' TotalCount with
    # Archived=true without counting, whatever the history's size.
    Column("task_count", BigInteger, nullable=False, server_default="0"),
    # The provider that acts on the cluster, and the machine whose workers alone may (None: any).
    Column("provider", String(32), nullable=False, server_default="simulated"),
    Column("host", String(255), nullable=True),
    Index(None, "account_id", "created_at"),
    Index("ix_clusters_host", "host"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("hostname", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("instance_type", String(64), nullable=False, server_default=""),
    Column("private_ip", String(64), nullable=False, server_default=""),
    Column("public_ip", String(64), nullable=False, server_default=""),
    Column("zone_id", String(64), nullable=False, server_default=""),
    Column("image_id", String(128), nullable=False, server_default=""),
    Column("image_owner_alias", String(32), nullable=False, server_default="system"),
    Column("create_mode", String(16), nullable=False, server_default="manual"),
    Column("spot_strategy", String(32), nullable=False, server_default="NoSpot"),
    Column("instance_charge_type", String(32), nullable=False, server_default="PostPaid"),
    Column("expired", Boolean, nullable=False, server_default=text("false")),
    Column("extra", Text, nullable=False, server_default="{}"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime, nullable=True),
    # The node-level task now running on it, if any.
    Column("task_id", String(64), nullable=True),
    Index(None, "cluster_id", "role", "hostname"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("task_id", String(64), nullable=False, unique=True),
    Column("account_id", String(32), nullable=False),
    Column("cluster_id", String(64), nullable=False),
    Column("task_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("current_step", Integer, nullable=False, server_default="0"),
    Column("total_steps", Integer, nullable=False),
    Column("result", Text, nullable=False, server_default="{}"),
    Column("errors", Text, nullable=False, server_default="[]"),
    Column("request", Text, nullable=False, server_default="{}"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    # The engine's columns: the plan, the step state, when the next step is due, and the lease.
    Column("plan", Text, nullable=False, server_default="[]"),
    Column("state", Text, nullable=False, server_default="{}"),
    Column("run_after", UtcDateTime, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_token", Integer, nullable=False, server_default="0"),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("lost_attempts", Integer, nullable=False, server_default="0"),
    # Leases lost since the task's last recorded step (each step sets it back to 0): the engine fails a
    # task after HPCPLANE_MAX_ATTEMPTS of them, so a worker killed holding many progressing tasks does not
    # use up their attempts, while a step that kills its worker every time still ends the task.
    Column("lost_streak", Integer, nullable=False, server_default="0"),
    Column("client_token", String(64), nullable=True),
    Column("params_hash", String(64), nullable=True),
    # The cluster's owning host, copied at creation: only that host's workers claim the task.
    Column("host", String(255), nullable=True),
    # ListTasks with Archived=true: one cluster's tasks, newest first, ties broken by seq.
    Index("ix_tasks_cluster_created", "cluster_id", "created_at", "seq"),
    # ListTasks with Archived=false: the (few) tasks still running, found without scanning history.
    Index(
        "ix_tasks_cluster_running",
        "cluster_id",
        "created_at",
        "seq",
        sqlite_where=text("finished_at IS NULL"),
        postgresql_where=text("finished_at IS NULL"),
    ),
    Index("ix_tasks_finished", "finished_at"),
    # Workers claim the due steps of unfinished tasks.
    Index(
        "ix_tasks_due",
        "run_after",
        sqlite_where=text("finished_at IS NULL"),
        postgresql_where=text("finished_at IS NULL"),
    ),
    # ClientToken idempotency: one task per (account, type, token).
    Index("ix_tasks_client_token", "account_id", "task_type", "client_token", unique=True),
)

nonces = Table(
    "nonces",
    metadata,
    Column("access_key_id", String(64), nullable=False),
    Column("nonce", String(128), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("access_key_id", "nonce"),
    Index(None, "expires_at"),
)

# The simulated cloud's call log: one row per provider call, with the step's idempotency token.
sim_calls = Table(
    "sim_calls",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("instance_ids", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "token"),
)

# --- RAM: groups, roles, policies and their attachments; STS credentials; the audit trail --------


def _account_owned(name: str, name_length: int, *columns: Column[Any]) -> Table:
    """A RAM entity: an id, its account, a name unique in the account, its own columns, a creation time."""
    return Table(
        name,
        metadata,
        Column("id", String(32), primary_key=True),
        Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        Column("name", String(name_length), nullable=False),
        *columns,
        Column("created_at", UtcDateTime, nullable=False),
        UniqueConstraint("account_id", "name"),
    )


ram_groups = _account_owned("ram_groups", 64)

ram_group_members = Table(
    "ram_group_members",
    metadata,
    Column("group_id", String(32), ForeignKey("ram_groups.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(32), ForeignKey("ram_users.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("group_id", "user_id"),
)

ram_roles = _account_owned(
    "ram_roles",
    64,
    Column("trust_document", Text, nullable=False),
    Column("max_session_duration", Integer, nullable=False, server_default="3600"),
)

ram_policies = _account_owned("ram_policies", 128, Column("document", Text, nullable=False))

ram_attachments = Table(
    "ram_attachments",
    metadata,
    Column("policy_id", String(32), ForeignKey("ram_policies.id", ondelete="CASCADE"), nullable=False),
    Column("principal_type", String(8), nullable=False),  # user | group | role
    Column("principal_id", String(32), nullable=False),
    PrimaryKeyConstraint("policy_id", "principal_type", "principal_id"),
    Index(None, "principal_type", "principal_id"),
)

sts_credentials = Table(
    "sts_credentials",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("role_id", String(32), ForeignKey("ram_roles.id", ondelete="CASCADE"), nullable=False),
    Column("session_name", String(64), nullable=False),
    Column("secret_enc", Text, nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("session_policy", Text, nullable=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "expires_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("account_id", String(32), nullable=True),
    Column("principal", String(200), nullable=True),
    Column("access_key_id", String(64), nullable=True),
    Column("action", String(64), nullable=True),
    Column("resource", String(300), nullable=True),
    Column("source_ip", String(64), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("error_code", String(64), nullable=True),
    Index(None, "at"),
    Index(None, "action", "at"),
    Index(None, "principal", "at"),
)

# --- Task events (SSE ids, the webhook outbox), console sessions, webhooks --------------------------

# One row per task change (creation, each step, the end), written in the change's transaction. Readers
# go in (tx, id) order: `tx` is the writing transaction's id on PostgreSQL (0 on SQLite, whose writers
# commit in id order), so a reader that takes only finished transactions never skips a late commit.
task_events = Table(
    "task_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("tx", BigInteger, nullable=False, server_default="0"),
    Column("kind", String(16), nullable=False),  # created | progress | ended
    Column("task_id", String(64), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("cluster_id", String(64), nullable=False),
    Column("task_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("current_step", Integer, nullable=False),
    Column("total_steps", Integer, nullable=False),
    Column("result", Text, nullable=False),
    Column("errors", Text, nullable=False),
    Column("request", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "cluster_id", "tx", "id"),
    Index(None, "account_id", "tx", "id"),
    Index(None, "at"),
    sqlite_autoincrement=True,
)

# Console sign-ins: only a hash of the random session id is kept, never a secret.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("access_key_id", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "expires_at"),
)

# Webhooks: an account's URLs; the cursor is the last event delivered (task_events is the outbox).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False, server_default=""),  # comma-separated kinds; empty: all
    Column("secret_enc", Text, nullable=False),
    Column("cursor_tx", BigInteger, nullable=False, server_default="0"),
    Column("cursor_id", BigInteger, nullable=False, server_default="0"),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "account_id"),
    Index(None, "next_attempt_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(48), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "webhook_id", "id"),
)

# --- The actions of issue 10: cluster logs, job templates, users, queues ------------------------

# ListClusterLogs: one line per event of an asynchronous operation, written by the engine's steps.
cluster_logs = Table(
    "cluster_logs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("level", String(8), nullable=False),
    Column("message", String(512), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "cluster_id", "id"),
)

# Job templates (CreateJobTemplate ... DeleteJobTemplates): an account's, not a cluster's.
job_templates = Table(
    "job_templates",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("command_line", String(2048), nullable=False),
    Column("array_request", String(64), nullable=False, server_default=""),
    Column("clock_time", String(16), nullable=False, server_default=""),
    Column("input_file_url", String(1024), nullable=False, server_default=""),
    Column("mem", String(16), nullable=False, server_default=""),
    Column("package_path", String(512), nullable=False, server_default=""),
    Column("queue", String(64), nullable=False, server_default=""),
    Column("runas_user", String(32), nullable=False, server_default=""),
    Column("stderr_redirect_path", String(512), nullable=False, server_default=""),
    Column("stdout_redirect_path", String(512), nullable=False, server_default=""),
    Column("unzip_cmd", String(16), nullable=False, server_default=""),
    Column("variables", String(2048), nullable=False, server_default=""),
    Column("gpu", Integer, nullable=False, server_default="0"),
    Column("node", Integer, nullable=False, server_default="0"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("task", Integer, nullable=False, server_default="0"),
    Column("thread", Integer, nullable=False, server_default="0"),
    Column("re_runable", Boolean, nullable=False, server_default=text("false")),
    Column("with_unzip_cmd", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "account_id", "created_at"),
)

# A cluster's users (AddUsers ... ListUsers): passwords only as a salted scrypt hash.
cluster_users = Table(
    "cluster_users",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(30), nullable=False),
    Column("user_group", String(16), nullable=False),
    Column("password_hash", String(160), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("cluster_id", "name"),
)

# A cluster's queues beyond its scheduler's default one (AddQueue, UpdateQueueConfig, DeleteQueue).
cluster_queues = Table(
    "cluster_queues",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("compute_instance_type", String(256), nullable=False, server_default=""),
    Column("deployment_set_id", String(64), nullable=False, server_default=""),
    Column("network_interface_traffic_mode", String(16), nullable=False, server_default="Standard"),
    Column("resource_group_id", String(64), nullable=False, server_default=""),
    Column("use_ess", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("cluster_id", "name"),
)

# Jobs (SubmitJob ... RerunJobs): our record of each job; the provider runs them and reports states.
jobs = Table(
    "jobs",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("name", String(64), nullable=False),
    Column("owner", String(30), nullable=False),
    Column("queue", String(63), nullable=False),
    Column("command_line", String(2048), nullable=False),
    Column("nodes", Integer, nullable=False),
    Column("cpus", Integer, nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("re_runable", Boolean, nullable=False, server_default=text("false")),
    Column("state", String(16), nullable=False),
    Column("node_list", String(2048), nullable=False, server_default=""),
    Column("stdout_path", String(512), nullable=False, server_default=""),
    Column("stderr_path", String(512), nullable=False, server_default=""),
    Column("package_path", String(512), nullable=False, server_default=""),
    Column("variables", String(2048), nullable=False, server_default=""),
    Column("array_request", String(64), nullable=False, server_default=""),
    Column("clock_time", String(16), nullable=False, server_default=""),
    Column("comment", String(256), nullable=False, server_default=""),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("ends_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime, nullable=True),
    # The JobSubmission (JSON) until the provider confirms it; NULL once it has (migration 0009).
    Column("submission", Text, nullable=True),
    PrimaryKeyConstraint("cluster_id", "id"),
    Index(None, "cluster_id", "seq"),
    Index(None, "state"),
)

# SetAutoScaleConfig per cluster, and what the autoscaler remembers between its rounds.
autoscale_configs = Table(
    "autoscale_configs",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("config", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="{}"),
    Column("updated_at", UtcDateTime, nullable=False),
)
