"""Two local clusters built at once do not share anything: bridges, subnets, munge keys, users."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hpcplane.providers.local.facade import LocalClusters
from tests.support.localslurm import clusters, local_home, new_cluster_id, token

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]
__all__ = ["clusters", "local_home"]


def _build(clusters: LocalClusters, cluster_id: str) -> list[str]:
    clusters.ensure_controller(token(), cluster_id)
    clusters.ensure_user(token(), cluster_id, "alice")
    return clusters.ensure_nodes(token(), cluster_id, ["compute0"]).ready


def test_two_clusters_built_concurrently_are_apart(clusters: LocalClusters) -> None:
    """Built in parallel threads, both come up; a credential of one is refused by the other's munged."""
    ids = [new_cluster_id(), new_cluster_id()]
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda cluster_id: _build(clusters, cluster_id), ids))
        assert results == [["compute0"], ["compute0"]]
        one, two = (clusters.record(cluster_id) for cluster_id in ids)
        assert one.bridge != two.bridge
        assert one.subnet != two.subnet
        assert one.users["alice"] != two.users["alice"]
        sockets = [clusters.store.paths(cluster_id).munge_socket for cluster_id in ids]
        assert _unmunge(sockets[0], sockets[0]) == 0
        assert _unmunge(sockets[0], sockets[1]) != 0
    finally:
        for cluster_id in ids:
            clusters.destroy(cluster_id)


def _unmunge(encode_with: Path, decode_with: Path) -> int:
    credential = subprocess.run(
        ["munge", "-n", "-S", str(encode_with)], capture_output=True, text=True, check=True
    ).stdout
    return subprocess.run(
        ["unmunge", "-S", str(decode_with)], input=credential, capture_output=True, text=True, check=False
    ).returncode
