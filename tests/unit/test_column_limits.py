"""The readers' limits against the tables: no value a reader accepts is wider than the column it reaches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Text

from hpcplane.api.actions import operations
from hpcplane.api.actions.operations import read_add_nodes, read_create_cluster
from hpcplane.domain.resources import Role
from hpcplane.store.audit import _FIELDS, AuditRecord, _row
from hpcplane.store.limits import TABLES, fit, width
from tests.support.probing import PROBE_MAX, longest_accepted

CREATE = {"Name": "limits", "Password": "Abc-1234x"}


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


def test_width_of_a_text_column_is_the_callers_limit() -> None:
    """A String column gives its declared length; a Text column the `unbounded` limit given, and
    without one (or for a column that is not text at all) ValueError naming the column."""
    assert width("audit_log", "request_id") == 64
    assert width("audit_log", "decision") == 16
    text = next(c.name for c in TABLES["tasks"].c if isinstance(c.type, Text))
    assert width("tasks", text, unbounded=500) == 500
    with pytest.raises(ValueError, match=rf"^tasks\.{text} is not a bounded String column$"):
        width("tasks", text)
    with pytest.raises(ValueError, match=r"^audit_log\.id is not a bounded String column$"):
        width("audit_log", "id")


def test_fit_makes_any_text_storable_in_its_column() -> None:
    """NUL bytes become U+FFFD and lone surrogates '?', then the text is cut to the column's width
    (of the table and column named); None stays None."""
    assert fit("audit_log", "request_id", None) is None
    assert fit("audit_log", "request_id", "a\x00b\ud800c") == "a\ufffdb?c"
    assert fit("audit_log", "request_id", "é" * 100) == "é" * 64
    assert fit("audit_log", "decision", "x" * 100) == "x" * 16
    assert fit("audit_log", "resource", "r" * 400) == "r" * 300


@pytest.mark.parametrize(
    "value",
    [
        "ehpc:ListTasks",
        "x" * 16,  # exactly the decision column's width: kept
        "x" * 17,  # one past it: cut
        "a\x00b",
        "a\ud800b",
        "é" * 5,
        "é" * 400,
        "",
    ],
)
def test_an_audit_rows_text_is_what_fit_makes_of_it(value: str) -> None:
    """The audit writer's row keeps a short clean ASCII value as it is and fits every other one: each
    column's value is exactly `fit`'s, whatever the client sent."""
    at = datetime(2026, 12, 4, tzinfo=UTC)
    record = AuditRecord(at, *([value] * (len(_FIELDS) - 1)))
    row = _row(record, "bound")
    assert row[0] == "bound"
    assert row[1:] == [fit("audit_log", name, value) for name in _FIELDS[1:]]
