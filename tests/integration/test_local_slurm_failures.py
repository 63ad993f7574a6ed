"""The local provider fails for real: a slurmd that does not register is that node's error, a slurmctld
that does not start fails the call with the reason from its log; neither leaves anything behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from hpcplane.domain.errors import ProviderFailed
from hpcplane.providers.local.commands import Completed, SubprocessRunner
from hpcplane.providers.local.facade import LocalClusters
from tests.support.localslurm import NETWORK, PREFIX, assert_nothing_left, local_home, new_cluster_id, token

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]
__all__ = ["local_home"]

# Holds the controller's port, and says so once it does (the daemon must not start before that).
LISTENER = (
    "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 6817)); s.listen();"
    " print('listening', flush=True); time.sleep(120)"
)


class Sabotage(SubprocessRunner):
    """The real runner, with a real fault of the machine made just before a chosen daemon starts."""

    def __init__(self, daemon: str, netns_of: str) -> None:
        self.daemon = daemon
        self.netns_of = netns_of
        self.busy: list[subprocess.Popen[bytes]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 60.0,
        daemon: bool = False,
    ) -> Completed:
        netns = next((a.removeprefix("--net=/run/netns/") for a in argv if a.startswith("--net=")), "")
        if self.daemon in argv and netns.endswith(f"-{self.netns_of}"):
            self.fault(netns)
        return super().run(argv, env=env, check=check, timeout=timeout, daemon=daemon)

    def fault(self, netns: str) -> None:
        if self.daemon == "slurmctld":  # its port taken by another program in the manager's namespace
            listener = ["ip", "netns", "exec", netns, sys.executable, "-c", LISTENER]
            process = subprocess.Popen(listener, stdout=subprocess.PIPE)
            self.busy.append(process)
            # Under load the listener's interpreter may take longer to start than any fixed pause:
            # wait for its word (an empty line means it died, and the test's assertions will say why).
            assert process.stdout is not None
            assert process.stdout.readline() == b"listening\n", "the port-holding listener did not start"
        else:  # the node's only link is down: slurmd cannot reach slurmctld
            subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)

    def close(self) -> None:
        for process in self.busy:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _nothing_left(clusters: LocalClusters, cluster_id: str) -> None:
    root = clusters.store.paths(cluster_id).root
    clusters.destroy(cluster_id)
    assert_nothing_left(PREFIX, cluster_id, root)


def test_a_slurmd_that_does_not_register_is_that_nodes_error(local_home: Path) -> None:
    """AddNodes of two nodes, one cut off from the controller: the other is ready, it has its reason."""
    runner = Sabotage("slurmd", "compute1")
    clusters = LocalClusters(
        local_home, network_range=NETWORK, prefix=PREFIX, runner=runner, register_timeout=8
    )
    cluster_id = new_cluster_id()
    try:
        clusters.ensure_controller(token(), cluster_id)
        result = clusters.ensure_nodes(token(), cluster_id, ["compute0", "compute1"])
        assert result.ready == ["compute0"]
        assert list(result.failed) == ["compute1"]
        assert "compute1" in result.failed["compute1"]
    finally:
        _nothing_left(clusters, cluster_id)


def test_a_slurmctld_that_does_not_start_fails_with_its_reason(local_home: Path) -> None:
    """The controller's port is taken: ensure_controller raises ProviderFailed naming slurmctld."""
    runner = Sabotage("slurmctld", "manager")
    clusters = LocalClusters(
        local_home, network_range=NETWORK, prefix=PREFIX, runner=runner, start_timeout=10
    )
    cluster_id = new_cluster_id()
    try:
        with pytest.raises(ProviderFailed) as raised:
            clusters.ensure_controller(token(), cluster_id)
        assert "start slurmctld" in raised.value.message
        assert "Address already in use" in raised.value.fields["reason"]
        assert clusters.record(cluster_id).tokens == {}
    finally:
        runner.close()
        _nothing_left(clusters, cluster_id)
