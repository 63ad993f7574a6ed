"""Settings, read once from HPCPLANE_* environment variables and CLI options."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
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
    timestamp_skew: int = Field(default=900, ge=1, description="seconds a request's time may differ")
    nonce_ttl: int = Field(default=1800, ge=1, description="seconds a nonce is remembered")
    archive_delay: float = Field(default=0.0, ge=0, description="seconds an ended task stays current")
    demo: bool | None = Field(default=None, description="create a demo account (default: embedded store)")
    clock_offset: float = Field(default=0.0, description="seconds added to the server's clock")
    # The task engine.
    worker: bool = Field(default=True, description="serve runs a worker in-process (--no-worker: API only)")
    worker_concurrency: int = Field(default=4, ge=1, description="tasks one worker process runs at once")
    lease_seconds: float = Field(default=30.0, gt=0, description="a claimed task is another's after this")
    max_attempts: int = Field(default=3, ge=1, description="lost leases before a task ends Failed")
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

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file under home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'hpcplane.db').resolve()}"

    @property
    def embedded(self) -> bool:
        """True when running on the default SQLite file under home."""
        return self.database_url is None

    @property
    def host_id(self) -> str:
        """The HostId of every error body."""
        return f"ehpc.{self.region}.aliyuncs.com"
