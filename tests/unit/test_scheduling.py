"""tests/support/scheduling.py: a file per xdist unit, the machine group on one worker, longest first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live import free_port
from tests.support.scheduling import LONGEST, MACHINE, priority, unit_of

ROOT = Path(__file__).resolve().parents[2]


def test_a_test_belongs_to_its_file_or_the_machine_unit() -> None:
    assert unit_of("tests/api/test_a.py::test_one") == "tests/api/test_a.py"
    assert unit_of("tests/api/test_a.py::Case::test_one[tests/chaos/x]") == "tests/api/test_a.py"
    assert unit_of("tests/integration/test_local_serve.py::test_two[sqlite]") == MACHINE
    assert unit_of("tests/chaos/test_chaos_short.py::test_run") == MACHINE
    assert unit_of("tests/integration/test_store.py::test_local_x") == "tests/integration/test_store.py"


def test_the_longest_units_come_first_then_the_largest() -> None:
    units = {"tests/unit/test_many.py": 300, "tests/unit/test_few.py": 3, MACHINE: 40, LONGEST[0]: 1}
    ordered = sorted(units, key=lambda unit: priority(unit, units[unit]), reverse=True)
    assert ordered == [LONGEST[0], MACHINE, "tests/unit/test_many.py", "tests/unit/test_few.py"]


@pytest.mark.parametrize("worker", range(3))
def test_each_worker_picks_ports_of_its_own_class(monkeypatch: pytest.MonkeyPatch, worker: int) -> None:
    """Three workers: worker N's free ports are those with port // 2 = N (mod 3), so no two workers pick
    the same one; without xdist, any free port."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
    assert {free_port() // 2 % 3 for _ in range(20)} == {worker}
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert len({free_port() // 2 % 3 for _ in range(60)}) > 1


MODULE = """
import os
from pathlib import Path

import pytest

{mark}

@pytest.mark.parametrize("n", range(4))
def test_records_its_worker(n: int) -> None:
    out = Path(os.environ["RECORD_DIR"]) / (__name__ + "-" + str(n))
    out.write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def run_suite(suite: Path, records: Path, workers: str = "2") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECORD_DIR": str(records), "PYTHONPATH": str(ROOT)}
    plugins = ["-p", "tests.support.scheduling", "-p", "no:cacheprovider"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-n", workers, "--dist", "loadfile", "-q", str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_a_real_run_keeps_files_and_the_machine_unit_together(tmp_path: Path) -> None:
    """Two workers, five files: each file's tests on one worker; the two machine files on the same one;
    a slurm test outside the machine files stops a run."""
    suite = tmp_path / "suite"
    (suite / "tests" / "integration").mkdir(parents=True)
    (suite / "tests" / "chaos").mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    slurm: a Slurm test\n")
    for name in ("test_a", "test_b", "test_c"):
        (suite / "tests" / f"{name}.py").write_text(MODULE.format(mark=""))
    slurm = MODULE.format(mark="pytestmark = pytest.mark.slurm")
    (suite / "tests" / "integration" / "test_local_one.py").write_text(slurm)
    (suite / "tests" / "chaos" / "test_two.py").write_text(MODULE.format(mark=""))
    records = tmp_path / "records"
    records.mkdir()
    ran = run_suite(suite, records)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "20 passed" in ran.stdout, ran.stdout
    workers: dict[str, set[str]] = {}
    for record in records.iterdir():
        workers.setdefault(record.name.rsplit("-", 1)[0], set()).add(record.read_text())
    assert sorted(workers) == ["test_a", "test_b", "test_c", "test_local_one", "test_two"]
    assert all(len(used) == 1 for used in workers.values()), workers
    assert workers["test_local_one"] == workers["test_two"], workers

    (suite / "tests" / "test_c.py").write_text(slurm)
    ran = run_suite(suite, records, workers="0")  # in one process, where the message is printed as is
    assert ran.returncode != 0
    assert "slurm tests outside MACHINE_PATHS" in ran.stdout + ran.stderr, ran.stdout + ran.stderr
