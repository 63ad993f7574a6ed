"""Settings, read once from HPCPLANE_* environment variables and CLI options."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every option of the server, the worker and the CLI; each is also HPCPLANE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="HPCPLANE_", extra="ignore")

    home: Path = Field(default=Path(".hpcplane"), description="where the embedded store and key live")
    host: str = "127.0.0.1"
    port: int = Field(default=9000, ge=0, le=65535)
    database_url: str | None = Field(default=None, description="default: SQLite file under home")
    redis_url: str | None = Field(default=None, description="nonce cache shared by API processes")
    secret_key: str | None = Field(default=None, description="Fernet key for AccessKey secrets at rest")
    region: str = "cn-hangzhou"
    max_concurrency: int = Field(default=256, ge=1, description="requests in flight before 503")
    api_threads: int = Field(default=32, ge=1, description="threads that run calls' store work")
    db_timeout: float = Field(default=5.0, gt=0, description="seconds: connect, lock and statement limit")
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int | None = Field(
        default=None, ge=0, description="connections an API process opens past the pool (default 2x pool)"
    )
    db_idle_in_transaction: float | None = Field(
        default=None, gt=0, description="seconds the server lets a session idle in a transaction"
    )
    db_transaction_pooling: bool = Field(
        default=False, description="PgBouncer in transaction mode: no session options, prepares, LISTEN"
    )
    timestamp_skew: int = Field(default=900, ge=1, description="seconds a request's time may differ")
    nonce_ttl: int = Field(default=1800, ge=1, description="seconds a nonce is remembered")
    archive_delay: float = Field(default=0.0, ge=0, description="seconds an ended task stays current")
    demo: bool | None = Field(default=None, description="create a demo account (default: embedded store)")
    clock_offset: float = Field(default=0.0, description="seconds added to the server's clock")
    # The task engine.
    worker: bool = Field(default=True, description="serve runs a worker in-process (--no-worker: API only)")
    # Threads of one worker process; each runs up to CLAIM_BATCH tasks side by side (decision 0062).
    worker_concurrency: int = Field(
        default=2, ge=1, description="threads of one worker process, each running up to 16 tasks at once"
    )
    lease_seconds: float = Field(default=30.0, gt=0, description="a claimed task is another's after this")
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="leases lost in a row (no step recorded between) before a task ends Failed",
    )
    max_step_seconds: float = Field(default=600.0, gt=0, description="heartbeats stop after this")
    poll_interval: float = Field(default=0.2, gt=0, description="seconds between polls on SQLite")
    task_retention: float | None = Field(default=None, gt=0, description="seconds history is kept")
    deleted_cluster_grace: float = Field(default=3600.0, ge=0, description="ListTasks of a deleted cluster")
    sync_timeout: float = Field(default=600.0, gt=0, description="how long AddNodes Sync=true waits")
    # The simulated cloud.
    sim_step_seconds: float = Field(default=2.0, ge=0, description="mean duration of a task step")
    sim_jitter: float = Field(default=0.25, ge=0, le=1, description="+/- fraction of a step's duration")
    sim_capacity: int = Field(default=1000, ge=0, description="compute instances an account may hold")
    sim_seed: int = Field(default=0, description="seed of every simulated decision")
    sim_faults: str = Field(
        default="", description="e.g. AddNodes.fail_step=3;StopCluster.node_fail_rate=0.5"
    )
    # The provider: what tasks act on (docs/providers.md).
    provider: Literal["simulated", "local"] = Field(
        default="simulated", description="simulated cloud, or real Slurm clusters on this machine"
    )
    reconcile_seconds: float = Field(
        default=2.0, gt=0, description="seconds between a worker's observations of its local clusters"
    )
    # The local provider (real Slurm clusters on this machine).
    local_network: str = Field(
        default="10.247.0.0/16", description="private range split into one /24 per local cluster"
    )
    local_prefix: str = Field(
        default="hp", pattern=r"^[a-z]{1,3}$", description="first letters of every local kernel object's name"
    )
    # Jobs and autoscaling on the simulated cloud (issue 10).
    sim_job_seconds: float = Field(default=30.0, ge=0, description="how long a simulated job runs")
    sim_job_fail_rate: float = Field(default=0.0, ge=0, le=1, description="share of jobs that fail")
    job_tick_seconds: float = Field(default=1.0, gt=0, description="seconds between scheduling rounds")
    sim_minute_seconds: float = Field(
        default=60.0, gt=0, description="real seconds in one autoscaler minute (intervals scale with it)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
    trusted_proxies: str = Field(
        default="", description="comma-separated IPs/CIDRs whose X-Forwarded-For gives acs:SourceIp"
    )
    ssl_certfile: str | None = Field(default=None, description="serve HTTPS with this certificate (PEM)")
    ssl_keyfile: str | None = Field(default=None, description="the certificate's private key (PEM)")
    # The transport's limits (docs/protocol.md, "Limits") and flow control.
    max_body_bytes: int = Field(default=262144, ge=0, description="a larger request body is refused (413)")
    max_url_bytes: int = Field(default=32768, ge=64, description="a longer request URL is refused (414)")
    max_header_bytes: int = Field(default=65536, ge=256, description="request line + headers (431)")
    header_timeout: float = Field(default=10.0, gt=0, description="seconds for a request's head (408)")
    body_timeout: float = Field(default=30.0, gt=0, description="seconds for a request's body (408)")
    idle_timeout: float = Field(default=10.0, gt=0, description="a new connection's first byte, seconds")
    keep_alive_timeout: int = Field(default=5, ge=1, description="seconds a kept-alive connection may idle")
    max_connections: int = Field(default=1000, ge=1, description="open connections (idle ones are shed)")
    rate_limit: float = Field(default=500.0, ge=0, description="calls a second per AccessKey (0: no limit)")
    rate_burst: int = Field(default=1000, ge=1, description="calls an AccessKey may save up")
    action_rate_limits: str = Field(
        default="", description="per AccessKey and action, e.g. CreateCluster=1/5;AddNodes=5 (rate[/burst])"
    )

    @field_validator("action_rate_limits")
    @classmethod
    def _action_quotas(cls, value: str) -> str:
        from hpcplane.api.throttle import parse_quotas

        parse_quotas(0, 1, value)  # a ValueError names the part that is not Action=rate[/burst]
        return value

    # The console, push and webhooks (docs/console.md, docs/webhooks.md).
    console_session_ttl: float = Field(default=28800.0, gt=0, description="seconds a console sign-in lasts")
    webhook_backoff: float = Field(default=2.0, gt=0, description="seconds before a webhook's first retry")
    webhook_backoff_max: float = Field(default=3600.0, gt=0, description="longest wait between retries")
    webhook_timeout: float = Field(default=10.0, gt=0, description="seconds a webhook POST may take")
    # The emulator control API, metrics and start-up hooks (docs/control.md, docs/metrics.md).
    control: bool | None = Field(default=None, description="/_hpcplane/ API (default: embedded store)")
    control_token: str | None = Field(default=None, description="control API token (default: generated)")
    metrics_token: str | None = Field(default=None, description="a Bearer token /metrics requires")
    metrics_dir: Path | None = Field(default=None, description="multiprocess metrics files (home/metrics)")
    init_dir: Path | None = Field(default=None, description="scripts run once the server answers")

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file under home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'hpcplane.db').resolve()}"

    @property
    def idle_in_transaction(self) -> float:
        """The configured limit, or the call deadline plus a second, but below half the lease."""
        if self.db_idle_in_transaction is not None:
            return self.db_idle_in_transaction
        return max(1.0, min(self.db_timeout + 1.0, self.lease_seconds / 2))

    @property
    def embedded(self) -> bool:
        """True when running on the default SQLite file under home."""
        return self.database_url is None

    @property
    def control_enabled(self) -> bool:
        """The control API: HPCPLANE_CONTROL, else on for the embedded default only."""
        return self.control if self.control is not None else self.embedded

    @property
    def host_id(self) -> str:
        """The HostId of every error body."""
        return f"ehpc.{self.region}.aliyuncs.com"
