"""The local facade's decisions that need no root: refusals before any effect, tokens, records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcplane.domain.errors import AddressRangeUnavailable, ClusterNotFound, InvalidParams
from hpcplane.providers.local.commands import Completed
from hpcplane.providers.local.facade import LocalClusters
from tests.support.localslurm import submission
from tests.support.runners import FakeRunner


class RecordingRunner(FakeRunner):
    """A Runner that records every command and answers `ip -j route` with the given routes only."""

    def __init__(self, routes: list[dict[str, str]]) -> None:
        super().__init__()
        self.routes = routes

    def answer(self, argv: tuple[str, ...]) -> Completed:
        if list(argv[:3]) == ["ip", "-j", "route"]:
            return Completed(argv, 0, json.dumps(self.routes), "")
        return super().answer(argv)


def test_an_overlapping_range_is_refused_before_any_effect(tmp_path: Path) -> None:
    """A range that a route overlaps: refused; nothing run but the route listing, no record saved."""
    runner = RecordingRunner([{"dst": "10.247.5.0/24", "dev": "eth1"}])
    clusters = LocalClusters(tmp_path, network_range="10.247.0.0/16", runner=runner)
    with pytest.raises(AddressRangeUnavailable, match=r"10\.247\.5\.0/24"):
        clusters.ensure_controller("T-1:0", "ehpc-a")
    assert runner.commands == [("ip", "-j", "route", "show", "table", "all")]
    assert not clusters.store.exists("ehpc-a")


def test_invalid_host_names_are_refused_naming_the_parameter(tmp_path: Path) -> None:
    """Host names become namespace names and Slurm node names: only lowercase DNS labels pass."""
    clusters = LocalClusters(tmp_path, runner=RecordingRunner([]))
    for bad in ("Compute0", "0node", "a_b", "x" * 32):
        with pytest.raises(InvalidParams) as raised:
            clusters.ensure_nodes("T-1:0", "ehpc-a", [bad])
        assert raised.value.fields["name"] == "Hostname"


def test_operations_on_an_unknown_cluster_are_cluster_not_found(tmp_path: Path) -> None:
    """No record: every operation but ensure_controller is ClusterNotFound, and nothing runs."""
    runner = RecordingRunner([])
    clusters = LocalClusters(tmp_path, runner=runner)
    request = submission("ehpc-none", "true")
    for call in (
        lambda: clusters.ensure_nodes("t", "ehpc-none", ["compute0"]),
        lambda: clusters.ensure_node_stopped("t", "ehpc-none", "compute0"),
        lambda: clusters.submit_job("t", request),
        lambda: clusters.observe_nodes("ehpc-none"),
    ):
        with pytest.raises(ClusterNotFound):
            call()
    assert runner.commands == []


def test_a_cluster_id_that_cannot_name_a_directory_is_refused(tmp_path: Path) -> None:
    """The id becomes a directory under HPCPLANE_HOME/local: no separators, no dot-dot."""
    clusters = LocalClusters(tmp_path, runner=RecordingRunner([]))
    for bad in ("../x", "a/b", ""):
        with pytest.raises(InvalidParams) as raised:
            clusters.ensure_controller("t", bad)
        assert raised.value.fields["name"] == "ClusterId"
