"""The readers' limits against the tables: no value a reader accepts is wider than the column it reaches."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from hpcplane.api.actions import operations
from hpcplane.api.actions.operations import read_add_nodes, read_create_cluster
from hpcplane.api.params import Params
from hpcplane.domain.errors import InvalidParams
from hpcplane.domain.resources import Role
from hpcplane.store.limits import TABLES, width

CREATE = {"Name": "limits", "Password": "Abc-1234x"}
PROBE_MAX = 40_000


def longest_accepted(read: object, base: Mapping[str, str], name: str, fill: str = "a") -> int:
    """The greatest n for which the reader accepts `name` = fill * n (0 when it accepts none)."""
    assert callable(read)

    def accepts(n: int) -> bool:
        try:
            read(Params({**base, name: fill * n}))
        except InvalidParams as error:
            if error.fields["name"] != name:
                raise
            return False
        return True

    low, high = 0, PROBE_MAX
    if not accepts(1):
        return 0
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if accepts(middle) else (low, middle - 1)
    return low


def bounded(table: str, column: str) -> bool:
    """A String column with a declared length (Text has none)."""
    return getattr(TABLES[table].c[column].type, "length", None) is not None


@pytest.mark.parametrize(("param", "column"), sorted(operations._CLUSTER_COLUMNS.items()))
def test_create_cluster_columns_bound_their_parameters(param: str, column: str) -> None:
    """Every CreateCluster parameter stored in a `clusters` column (the reader's own table of them, so a
    column added there is checked too) is refused beyond that column's width."""
    longest = longest_accepted(read_create_cluster, CREATE, param)
    if bounded("clusters", column):
        assert longest <= width("clusters", column), (param, longest)
    else:
        assert longest < PROBE_MAX, f"{param} reaches an unbounded column without a bound"


def test_create_cluster_fixed_parameters_fit() -> None:
    """Name, ClientToken and the instance types fit every column they reach."""
    assert longest_accepted(read_create_cluster, CREATE, "Name", "n") <= width("clusters", "name")
    assert longest_accepted(read_create_cluster, CREATE, "ClientToken") <= min(
        width("clusters", "client_token"), width("tasks", "client_token")
    )
    for role in Role:
        name = f"EcsOrder.{role.api_name}.InstanceType"
        longest = longest_accepted(read_create_cluster, CREATE, name)
        assert longest <= width("clusters", f"{role.value}_instance_type")
        assert longest <= width("nodes", "instance_type")


def test_add_nodes_parameters_fit_the_nodes_table() -> None:
    """AddNodes' InstanceType and ZoneId fit `nodes`; a host name made of prefix, number and suffix fits."""
    base = {"ClusterId": "c", "Count": "1"}
    assert longest_accepted(read_add_nodes, base, "InstanceType") <= width("nodes", "instance_type")
    assert longest_accepted(read_add_nodes, base, "ZoneId") <= width("nodes", "zone_id")
    assert longest_accepted(read_add_nodes, base, "ClusterId") <= width("clusters", "id")
    prefix = longest_accepted(read_add_nodes, base, "HostNamePrefix")
    suffix = longest_accepted(read_add_nodes, base, "HostNameSuffix")
    assert prefix + suffix + len("compute99999") <= width("nodes", "hostname")


def test_unknown_parameters_are_bounded() -> None:
    """A parameter CreateCluster keeps without reading (in `clusters.extra`) is bounded too."""
    assert 0 < longest_accepted(read_create_cluster, CREATE, "Plugin") <= 1024
