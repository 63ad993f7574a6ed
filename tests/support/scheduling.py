"""How `make test` spreads the suite over pytest-xdist workers (`--dist loadfile`, decision 0058).

- A test file is one unit of work: its tests run on one worker, in their order, so a module's server
  and its module-level clients start once and are closed after its last test, as in a serial run.
- The files of tests that change the machine itself are one unit, `machine` (MACHINE_PATHS), run one
  after another on one worker: the local Slurm clusters (the `slurm` marker: network namespaces,
  bridges, accounts and munged/slurmctld/slurmd daemons, swept by name prefix, and the end-to-end test's
  before/after inventory of all of them) and the chaos run (its own namespace and veth pair). Run side
  by side, each would see, and some would sweep, the others' objects. A `slurm` test in another file
  is a collection error. (By path, not by xdist's `xdist_group` mark: pytest-xdist 3.8.0 renames the
  test for a group, which pytest 9.2 no longer allows, so loadgroup splits groups.)
- The longest units are handed out first, so that none starts last and runs alone (LONGEST, then the
  units with the most tests).

Registered by tests/conftest.py only when xdist is installed; a plain `pytest` run is serial as before.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

MACHINE = "machine"
MACHINE_PATHS = ("tests/integration/test_local_", "tests/chaos/")

# The units that take longest (`pytest --durations`, docs/test-strength.md), longest first: handed out
# before every other unit.
LONGEST = (
    "tests/api/test_readme.py",  # one test: the README's shell examples, one after another
    MACHINE,  # the chaos run and the local Slurm tests
    "tests/api/test_terraform_replay.py",
    "tests/fuzz/test_fuzz.py",
    "tests/api/test_throttling.py",
)


def unit_of(nodeid: str) -> str:
    """The unit a test belongs to: `machine` for the files of MACHINE_PATHS, else its file."""
    path = nodeid.split("::", 1)[0]
    return MACHINE if path.startswith(MACHINE_PATHS) else path


def priority(unit: str, tests: int) -> tuple[int, int]:
    """Sort key, highest first: LONGEST in its order, then by the number of tests."""
    rank = LONGEST.index(unit) if unit in LONGEST else len(LONGEST)
    return (-rank, tests)


class FileScheduling(LoadScopeScheduling):
    """loadfile with the machine files as one unit, the longest units first."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node: WorkerController) -> None:
        unit = max(self.workqueue, key=lambda name: priority(name, len(self.workqueue[name])))
        self.workqueue.move_to_end(unit, last=False)
        super()._assign_work_unit(node)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> FileScheduling | None:
    return FileScheduling(config, log) if config.getvalue("dist") == "loadfile" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    outside = [
        item.nodeid for item in items if item.get_closest_marker("slurm") and unit_of(item.nodeid) != MACHINE
    ]
    if outside:
        raise pytest.UsageError(
            f"slurm tests outside MACHINE_PATHS (tests/support/scheduling.py): {', '.join(outside[:5])}"
        )
