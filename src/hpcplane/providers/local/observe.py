"""What the machine says about a cluster's nodes and jobs, observed and never assumed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpcplane.providers.local.records import Desired, Role
from hpcplane.providers.local.slurmstate import SlurmJob, SlurmNode

MAX_LOG_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class NodeObservation:
    """A node's record joined with its daemon's liveness and slurmctld's view of it.

    Like ParallelCluster's clustermgtd, a node is down when the scheduler says so *or* when its
    backing daemon does not run: a slurmd killed by hand is seen at once, before Slurm's timeout.
    """

    hostname: str
    role: Role
    address: str
    desired: Desired
    daemon_running: bool
    slurm: SlurmNode | None

    @property
    def is_down(self) -> bool:
        if not self.daemon_running:
            return True
        if self.role != "compute":
            return False
        return self.slurm is None or self.slurm.is_down

    @property
    def is_ready(self) -> bool:
        """Running and, for a compute node, registered with slurmctld and able to take work."""
        if self.role != "compute":
            return self.daemon_running
        return self.daemon_running and self.slurm is not None and self.slurm.is_registered

    @property
    def is_stopped(self) -> bool:
        return not self.daemon_running

    @property
    def matches_desired(self) -> bool:
        return self.is_ready if self.desired == "running" else self.is_stopped


@dataclass(frozen=True, slots=True)
class JobOutput:
    stdout: str
    stderr: str


def read_output(job: SlurmJob, root: Path) -> JobOutput:
    """A job's stdout and stderr files, read only from inside the cluster's own directory."""
    return JobOutput(
        _read_inside(job.stdout, root), _read_inside(job.stderr, root) if job.stderr != job.stdout else ""
    )


def _read_inside(text: str, root: Path) -> str:
    if not text or text in ("(null)", "/dev/null"):
        return ""
    path = Path(text)
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return ""
    if not resolved.is_relative_to(root.resolve()):
        return ""
    with resolved.open("rb") as handle:
        return handle.read(MAX_LOG_BYTES).decode(errors="replace")
