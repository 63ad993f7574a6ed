"""docs/coverage.md, generated from the official SDK: `python -m hpcplane.coverage > docs/coverage.md`.

Every `<snake>_with_options` method of `alibabacloud_ehpc20180412.client.Client` is one action of the
API; its `action='...'` gives the name. An action is asynchronous when its response model has a TaskId;
it is implemented when the dispatch table has it. The notes say what hpcplane simulates.
"""

from __future__ import annotations

import inspect
import re

from hpcplane.api.dispatch import ACTIONS

_ACTION = re.compile(r"action='([A-Za-z]+)'")
_SUFFIX = "_with_options"

# What each implemented family does on the simulated cloud (by action; the rest are stored as given).
NOTES: dict[str, str] = {
    **dict.fromkeys(
        (
            "CreateCluster",
            "StartCluster",
            "StopCluster",
            "DeleteCluster",
            "AddNodes",
            "StartNodes",
            "StopNodes",
            "ResetNodes",
            "DeleteNodes",
            "RecoverCluster",
        ),
        "a task on the engine; instances are rows of the simulated cloud",
    ),
    **dict.fromkeys(
        (
            "SubmitJob",
            "StopJobs",
            "DeleteJobs",
            "RerunJobs",
            "ListJobs",
            "ListJobsWithFilters",
            "DescribeJob",
            "GetJobLog",
        ),
        "jobs run on the simulated scheduler (through the provider); logs say they are simulated",
    ),
    **dict.fromkeys(
        ("SetAutoScaleConfig", "GetAutoScaleConfig", "DescribeAutoScaleConfig"),
        "the autoscaler starts AddNodes/DeleteNodes tasks",
    ),
    "CreateJobFile": "handed to the provider; the simulated cloud logs the call, writes nothing",
    "ListClusterLogs": "lines written by the engine as steps act",
    "ListNodesByQueue": "a node's queue is AddNodes' JobQueue",
    "ListQueues": "the scheduler's default queue, and added ones",
    "AddUsers": "passwords kept as salted scrypt hashes only",
    "ModifyUserPasswords": "passwords kept as salted scrypt hashes only",
    **dict.fromkeys(
        ("ListRegions", "ListImages", "ListPreferredEcsTypes", "ListCurrentClientVersion", "ListSoftwares"),
        "a fixed catalog of the simulated cloud",
    ),
    **dict.fromkeys(
        ("InstallSoftware", "UninstallSoftware", "ListInstalledSoftware"),
        "applications kept with the cluster; nothing is installed",
    ),
}


def sdk_actions() -> list[tuple[str, bool]]:
    """(Action, asynchronous) for every action of the SDK's client, sorted by name."""
    from alibabacloud_ehpc20180412 import models
    from alibabacloud_ehpc20180412.client import Client

    found: dict[str, bool] = {}
    for name, method in inspect.getmembers(Client, inspect.isfunction):
        if not name.endswith(_SUFFIX) or name.startswith("_"):
            continue
        match = _ACTION.search(inspect.getsource(method))
        if match is None:
            raise ValueError(f"{name}: no action='...' in its source")
        action = match.group(1)
        body = getattr(models, f"{action}ResponseBody", None)
        found[action] = body is not None and "task_id" in inspect.signature(body.__init__).parameters
    return sorted(found.items())


def render() -> str:
    actions = sdk_actions()
    implemented = sum(name in ACTIONS for name, _ in actions)
    lines = [
        "# Coverage of the E-HPC 2018-04-12 API",
        "",
        "Generated from the official SDK (`alibabacloud_ehpc20180412.client.Client`, one action per",
        "`*_with_options` method) by `python -m hpcplane.coverage > docs/coverage.md`;",
        "`tests/unit/test_coverage_doc.py` checks that this file is what the script prints.",
        "",
        f"{implemented} of {len(actions)} actions are implemented. Asynchronous: the SDK's response has a",
        "TaskId.",
        "",
        "| Action | implemented | sync/async | on the simulated cloud |",
        "|---|---|---|---|",
    ]
    for name, asynchronous in actions:
        done = name in ACTIONS
        lines.append(
            f"| {name} | {'yes' if done else 'no'} | {'async' if asynchronous else 'sync'} | "
            f"{NOTES.get(name, 'stored and read back' if done else '')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
