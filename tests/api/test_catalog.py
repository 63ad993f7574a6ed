"""The catalog reads and software on a cluster through both official SDKs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.families import BACKENDS, KINDS, account, ram_user, refused, seed, start_server
from tests.support.live import LiveServer
from tests.support.policies import allow


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(request, tmp_path_factory, "catalog")
    yield live
    live.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_what_create_cluster_is_filled_from(server: LiveServer, kind: str) -> None:
    """Regions include the server's; images, instance types and the client version are ones CreateCluster
    accepts; ListSoftwares lists schedulers and application tags per OS."""
    key = account(server)
    regions = server.call(kind, key, "ListRegions")["Regions"]["RegionInfo"]  # type: ignore[index]
    assert "cn-hangzhou" in {r["RegionId"] for r in regions}
    images: Any = server.call(kind, key, "ListImages", BaseOsTag="CentOS")["OsTags"]
    assert {i["OsTag"] for i in images["OsInfo"]} == {"CentOS_7.6_64", "CentOS_7.9_64"}
    series: Any = server.call(kind, key, "ListPreferredEcsTypes", ZoneId="cn-hangzhou-b")["Series"]
    computes = {t for s in series["SeriesInfo"] for t in s["Roles"]["Compute"]["InstanceTypeId"]}
    assert "ecs.c6.large" in computes
    assert server.call(kind, key, "ListCurrentClientVersion")["ClientVersion"] == "2.0.0"
    softwares: Any = server.call(kind, key, "ListSoftwares", OsTag="CentOS_7.6_64")["Softwares"]
    assert {s["SchedulerType"] for s in softwares["SoftwareInfo"]} >= {"pbs", "slurm"}
    tags = {a["Tag"] for s in softwares["SoftwareInfo"] for a in s["Applications"]["ApplicationInfo"]}
    assert "GROMACS_2020.4" in tags


@pytest.mark.parametrize("kind", KINDS)
def test_install_list_uninstall(server: LiveServer, kind: str) -> None:
    """InstallSoftware adds applications ListInstalledSoftware then lists; UninstallSoftware removes them;
    an unknown application is InvalidParams; another account's cluster is not found; RAM applies."""
    key = account(server)
    cluster_id = seed(server, key)
    server.call(
        kind, key, "InstallSoftware", ClusterId=cluster_id, Application="GROMACS_2020.4,LAMMPS_2020.10"
    )
    listed: Any = server.call(kind, key, "ListInstalledSoftware", ClusterId=cluster_id)["SoftwareList"]
    assert [(s["SoftwareName"], s["SoftwareVersion"]) for s in listed["SoftwareList"]] == [
        ("GROMACS", "2020.4"),
        ("LAMMPS", "2020.10"),
    ]
    server.call(kind, key, "UninstallSoftware", ClusterId=cluster_id, Application="GROMACS_2020.4")
    listed = server.call(kind, key, "ListInstalledSoftware", ClusterId=cluster_id)["SoftwareList"]
    assert [s["SoftwareId"] for s in listed["SoftwareList"]] == ["LAMMPS_2020.10"]
    error = refused(server, kind, key, "InstallSoftware", ClusterId=cluster_id, Application="Minecraft_1")
    assert error.message == "The specified parameter Application is invalid."
    other = account(server)
    assert (
        refused(server, "tea-v3", other, "ListInstalledSoftware", ClusterId=cluster_id).code
        == "ClusterNotFound"
    )
    nobody = ram_user(server, key)
    assert refused(server, "tea-v3", nobody, "ListRegions").code == "NotAuthorized"
    reader = ram_user(server, key, allow(Action="ehpc:List*"))
    assert refused(
        server, "legacy", reader, "InstallSoftware", ClusterId=cluster_id, Application="WRF_4.2"
    ).code == ("NotAuthorized")
    assert server.call("legacy", reader, "ListInstalledSoftware", ClusterId=cluster_id)["SoftwareList"]
