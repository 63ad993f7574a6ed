"""A local cluster's record under HPCPLANE_HOME/local/<cluster-id>/: its names, nodes, users and tokens."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from hpcplane.domain.errors import ClusterNotFound, InvalidParams

Role = Literal["manager", "login", "compute"]
Desired = Literal["running", "stopped"]

HOSTNAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
USER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,22}$")
CLUSTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def tag_of(cluster_id: str) -> str:
    """Six hex digits derived from the cluster id: short enough for Linux's 15-byte interface names."""
    return hashlib.sha256(cluster_id.encode()).hexdigest()[:6]


@dataclass(frozen=True, slots=True)
class KernelNames:
    """The names of a cluster's kernel objects and machine accounts, all derived from its id."""

    prefix: str
    tag: str

    @property
    def bridge(self) -> str:
        return f"{self.prefix}b{self.tag}"

    def netns(self, hostname: str) -> str:
        return f"{self.prefix}-{self.tag}-{hostname}"

    def veth(self, slot: int) -> str:
        """The host end of a node's veth pair, enslaved to the bridge."""
        return f"{self.prefix}v{self.tag}{slot}"

    def peer(self, slot: int) -> str:
        """The node end before it moves into the namespace (where it is renamed eth0)."""
        return f"{self.prefix}p{self.tag}{slot}"

    def user(self, name: str) -> str:
        """The machine account of cluster user `name`: the tag keeps two clusters' users apart."""
        if not USER_NAME.match(name):
            raise InvalidParams("UserName", f"{name!r}: lowercase letters, digits, _ and -, 1-23 chars")
        return f"{self.prefix}{self.tag}-{name}"


@dataclass(slots=True)
class NodeRecord:
    hostname: str
    role: Role
    address: str
    slot: int
    netns: str
    veth: str
    desired: Desired = "running"
    cpus: int = 1
    memory_mb: int = 1024


@dataclass(slots=True)
class ClusterRecord:
    cluster_id: str
    prefix: str
    tag: str
    subnet: str
    bridge: str
    partition: str = "comp"
    running: bool = True
    nodes: list[NodeRecord] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> KernelNames:
        return KernelNames(self.prefix, self.tag)

    def node(self, hostname: str) -> NodeRecord:
        for node in self.nodes:
            if node.hostname == hostname:
                return node
        raise InvalidParams("Hostname", f"{hostname!r} is not a node of {self.cluster_id}")

    def find(self, hostname: str) -> NodeRecord | None:
        return next((n for n in self.nodes if n.hostname == hostname), None)

    def by_role(self, role: Role) -> list[NodeRecord]:
        return [n for n in self.nodes if n.role == role]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClusterRecord:
        data = json.loads(text)
        data["nodes"] = [NodeRecord(**n) for n in data.get("nodes", [])]
        return cls(**data)


class ClusterPaths:
    """Where a cluster's files live; everything of it outside the kernel is under `root`."""

    def __init__(self, base: Path, cluster_id: str) -> None:
        if not CLUSTER_ID.match(cluster_id):
            raise InvalidParams("ClusterId", f"{cluster_id!r} cannot name a directory")
        self.root = base / cluster_id
        self.record = self.root / "cluster.json"
        self.lock = self.root / "lock"
        self.etc = self.root / "etc"
        self.slurm_conf = self.etc / "slurm.conf"
        self.cgroup_conf = self.etc / "cgroup.conf"
        self.munge = self.root / "munge"
        self.munge_key = self.munge / "munge.key"
        self.munge_socket = self.munge / "munge.socket"
        self.munge_pid = self.munge / "munged.pid"
        self.state = self.root / "slurm" / "state"
        self.spool_root = self.root / "slurm" / "spool"
        self.run = self.root / "run"
        self.log = self.root / "log"
        self.ns = self.root / "ns"
        self.home = self.root / "home"

    def uts(self, hostname: str) -> Path:
        """The bind-mounted UTS namespace that gives a node its host name."""
        return self.ns / f"{hostname}.uts"

    def spool(self, hostname: str) -> Path:
        return self.spool_root / hostname

    def slurmd_pid(self, hostname: str) -> Path:
        return self.run / f"slurmd-{hostname}.pid"

    @property
    def slurmctld_pid(self) -> Path:
        return self.run / "slurmctld.pid"

    def user_home(self, account: str) -> Path:
        return self.home / account


class RecordStore:
    """Reads and writes cluster records atomically; one flock per cluster serialises its operations."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def paths(self, cluster_id: str) -> ClusterPaths:
        return ClusterPaths(self.base, cluster_id)

    def exists(self, cluster_id: str) -> bool:
        return self.paths(cluster_id).record.exists()

    def load(self, cluster_id: str) -> ClusterRecord:
        try:
            return ClusterRecord.from_json(self.paths(cluster_id).record.read_text())
        except FileNotFoundError:
            raise ClusterNotFound() from None

    def save(self, record: ClusterRecord) -> None:
        path = self.paths(record.cluster_id).record
        temporary = path.with_suffix(".tmp")
        temporary.write_text(record.to_json())
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def all(self) -> list[ClusterRecord]:
        if not self.base.is_dir():
            return []
        records = []
        for path in sorted(self.base.glob("*/cluster.json")):
            try:
                records.append(ClusterRecord.from_json(path.read_text()))
            except FileNotFoundError:  # destroyed meanwhile
                continue
        return records

    @contextmanager
    def locked(self, cluster_id: str) -> Iterator[ClusterPaths]:
        paths = self.paths(cluster_id)
        paths.root.mkdir(parents=True, exist_ok=True)
        with _flock(paths.lock):
            yield paths

    @contextmanager
    def planning(self) -> Iterator[None]:
        """Held (inside a cluster's lock, never around one) while a new cluster takes its subnet."""
        self.base.mkdir(parents=True, exist_ok=True)
        with _flock(self.base / "plan.lock"):
            yield


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
