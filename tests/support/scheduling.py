"""How `make test` spreads the suite over pytest-xdist workers (`--dist loadgroup`, decision 0058).

- A test file is one unit of work: its tests run on one worker, in their order, so a module's server
  and its module-level clients start once and are closed after its last test, as in a serial run.
- Tests that change the machine itself are one unit, the group `machine`, run one after another on one
  worker: the local Slurm clusters (the `slurm` marker: network namespaces, bridges, accounts and
  munged/slurmctld/slurmd daemons, swept by name prefix, and the end-to-end test's before/after
  inventory of all of them) and the chaos run (its own namespace and veth pair). Run side by side, each
  would see, and some would sweep, the others' objects.
- The longest units are handed out first, so that none starts last and runs alone (LONGEST, then the
  units with the most tests); without these, xdist's loadgroup would hand out single tests.

Registered by tests/conftest.py only when xdist is installed; a plain `pytest` run is serial as before.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

MACHINE = "machine"

# The units that take longest (`pytest --durations`, docs/test-strength.md), longest first: handed out
# before every other unit.
LONGEST = (
    MACHINE,
    "tests/fuzz/test_fuzz.py",
    "tests/integration/test_crash.py",
    "tests/api/test_push_processes.py",
)


def unit_of(nodeid: str) -> str:
    """The unit a test belongs to: its xdist group (the `@name` loadgroup appends), or its file."""
    at = nodeid.rfind("@")
    if at > nodeid.rfind("]"):  # an "@" inside a parameter's id is not a group
        return nodeid[at + 1 :]
    return nodeid.split("::", 1)[0]


def priority(unit: str, tests: int) -> tuple[int, int]:
    """Sort key, highest first: LONGEST in its order, then by the number of tests."""
    rank = LONGEST.index(unit) if unit in LONGEST else len(LONGEST)
    return (-rank, tests)


class FileScheduling(LoadScopeScheduling):
    """loadscope with a file (or an xdist group) as the scope, the longest units first."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node: WorkerController) -> None:
        unit = max(self.workqueue, key=lambda name: priority(name, len(self.workqueue[name])))
        self.workqueue.move_to_end(unit, last=False)
        super()._assign_work_unit(node)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> FileScheduling | None:
    return FileScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns the marks into "@machine" suffixes
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slurm") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(MACHINE))
