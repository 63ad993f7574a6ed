"""docs/coverage.md is exactly what `python -m hpcplane.coverage` prints from the official SDK."""

from __future__ import annotations

from pathlib import Path

from hpcplane import coverage
from hpcplane.api.dispatch import ACTIONS

DOC = Path(__file__).parents[2] / "docs" / "coverage.md"


def test_the_doc_is_generated_from_the_sdk() -> None:
    """Regenerate with `python -m hpcplane.coverage > docs/coverage.md` when this fails."""
    assert DOC.read_text() == coverage.render()


def test_every_sdk_action_is_listed_and_every_implemented_one_is_an_sdk_action() -> None:
    """One row per `*_with_options` method; the dispatch table has no action the SDK does not know."""
    from alibabacloud_ehpc20180412.client import Client

    methods = [m for m in dir(Client) if m.endswith("_with_options") and not m.startswith("_")]
    names = [name for name, _ in coverage.sdk_actions()]
    assert len(names) == len(methods)
    assert set(ACTIONS) <= set(names)
    rows = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| Action")
    ]
    assert len(rows) == len(names)


def test_asynchronous_actions_are_those_with_a_task_id() -> None:
    """The nine operations and RecoverCluster are async; ListTasks and the reads are not."""
    found = dict(coverage.sdk_actions())
    for name in ("CreateCluster", "AddNodes", "DeleteCluster", "RecoverCluster", "StopNodes"):
        assert found[name] is True, name
    for name in ("ListTasks", "DescribeCluster", "ModifyClusterAttributes", "ListJobTemplates"):
        assert found[name] is False, name
