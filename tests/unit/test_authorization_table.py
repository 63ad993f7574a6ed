"""docs/authorization.md lists the RAM action and resource of every API exactly as the code declares them."""

from __future__ import annotations

from pathlib import Path

from hpcplane.api.dispatch import VERSIONS
from hpcplane.authz import ALL_RESOURCES

DOC = Path(__file__).parents[2] / "docs" / "authorization.md"


def test_table_matches_the_code() -> None:
    """Every action of every version has its row, and the doc has no other row."""
    rows = set()
    for version, table in VERSIONS.items():
        for name, action in table.items():
            resource = (
                "All Resources (`*`)"
                if action.permission.resource == ALL_RESOURCES
                else f"`{action.permission.resource}`"
            )
            rows.add(f"| {name} ({version}) | `{action.permission.action}` | {resource} |")
    documented = {line for line in DOC.read_text().splitlines() if line.startswith("| ") and "(20" in line}
    assert documented == rows


def test_every_ehpc_action_is_ehpc_namespaced() -> None:
    """The E-HPC actions are `ehpc:<Api>` with the API's own name."""
    for name, action in VERSIONS["2018-04-12"].items():
        assert action.permission.action == f"ehpc:{name}"
