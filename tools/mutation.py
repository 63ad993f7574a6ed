"""`make mutation`: mutmut over the core modules, each against the unit and integration tests that reach it.

Each module is mutated in a copy of the tree of its own (so the worktree is never touched and one module's
results never mix with another's), with mutmut's test selection narrowed to that module's test files;
within them mutmut runs, for each mutant, only the tests that call the mutated function. The live-server
API tests are left out: they are slow, and the code they reach runs in a server process mutmut cannot
switch. Prints killed/survived per module, the survivors, and the mutants recorded as equivalent (in
tools/equivalent_mutants.toml, with a reason each); fails when a module's score is under the target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tools" / "equivalent_mutants.toml"
TARGET = 90.0
# mutmut's exit codes for a mutant's test run, as its stats module names them.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS.update({2: "interrupted", 35: "suspicious"})
STATUS.update({36: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -24: "timeout"})
STATUS.update({37: "caught by type check", -11: "segfault", -9: "segfault"})
# Fast and in-process: no PostgreSQL/Redis variants of the store tests (the same SQL runs on SQLite).
PYTEST_ARGS = ["-m", "not postgres and not redis", "-p", "no:cacheprovider", "-x", "-q"]


@dataclass(frozen=True)
class Module:
    """A core module and the test files whose tests may kill its mutants."""

    path: str  # under src/
    tests: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")


MODULES = (
    Module("hpcplane/api/params.py", ("tests/unit/test_params.py",)),
    Module(
        "hpcplane/api/signing.py",
        ("tests/unit/test_signing.py", "tests/unit/test_signing_guards.py", "tests/unit/test_authn.py"),
    ),
    Module("hpcplane/api/authn.py", ("tests/unit/test_authn.py",)),
    Module(
        "hpcplane/authz/policy.py",
        (
            "tests/unit/test_policy.py",
            "tests/unit/test_policy_errors.py",
            "tests/unit/test_authorization_table.py",
        ),
    ),
    Module(
        "hpcplane/store/tasks.py",
        ("tests/integration/test_store.py", "tests/integration/test_store_tasks.py"),
    ),
    Module("hpcplane/engine/runner.py", ("tests/integration/test_engine_steps.py",)),
    Module("hpcplane/engine/steps.py", ("tests/integration/test_engine_steps.py",)),
)


@dataclass
class Result:
    """One module's mutants by status, and which survivors are recorded as equivalent."""

    module: Module
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> status
    equivalent: dict[str, str] = field(default_factory=dict)  # surviving mutant -> reason
    seconds: float = 0.0

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.statuses.values())

    @property
    def survivors(self) -> list[str]:
        alive = ("survived", "no tests", "suspicious", "skipped")
        return [m for m, s in self.statuses.items() if s in alive and m not in self.equivalent]

    @property
    def score(self) -> float:
        """Killed (or timed out) over all mutants but the equivalent ones."""
        dead = sum(1 for s in self.statuses.values() if s in ("killed", "timeout", "caught by type check"))
        considered = len(self.statuses) - len(self.equivalent)
        return 100.0 if considered == 0 else 100.0 * dead / considered


def equivalents() -> dict[str, str]:
    """The recorded equivalent mutants: full mutmut name -> why no test can tell it apart."""
    table = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
    return {f"{module}.{name}": reason for module, names in table.items() for name, reason in names.items()}


def workspace(module: Module, into: Path) -> None:
    """A copy of src/ and tests/, and a pyproject whose [tool.mutmut] names this module and its tests."""
    for part in ("src", "tests", "docs"):  # docs: tests compare tables there with the code
        shutil.copytree(ROOT / part, into / part, ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "pyproject.toml").read_text()
    text = text[: text.index("[tool.mutmut]")] if "[tool.mutmut]" in text else text
    tests = [t for t in module.tests if (ROOT / t).exists()]
    text += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        'also_copy = ["docs/"]\n'
        f"only_mutate = {json.dumps(['src/' + module.path])}\n"
        f"pytest_add_cli_args = {json.dumps(PYTEST_ARGS[:4])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
    )
    (into / "pyproject.toml").write_text(text)


def run(module: Module, children: int, keep: Path | None) -> Result:
    result = Result(module)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hpcplane-mutation-")) if keep is None else keep / module.name
    try:
        if work.exists() and keep is not None:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        workspace(module, work)
        env = {**os.environ, "CI": "true", "HPCPLANE_HYPOTHESIS_PROFILE": "mutation"}
        log = work / "mutmut.log"
        with log.open("wb") as out:
            command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)]
            subprocess.run(  # noqa: S603 (our own interpreter and arguments)
                command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        meta = work / "mutants" / "src" / (module.path + ".meta")
        if not meta.exists():
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"mutmut wrote no results for {module.name}:\n{tail}")
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if codes and all(code is None for code in codes.values()):
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"mutmut ran no mutant of {module.name} (its tests failed unmutated?):\n{tail}")
        result.statuses = {
            name: STATUS.get(code, "suspicious") if code is not None else "not run"
            for name, code in codes.items()
        }
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    recorded = equivalents()
    result.equivalent = {
        m: recorded[m] for m, s in result.statuses.items() if m in recorded and s != "killed"
    }
    result.seconds = time.monotonic() - started
    return result


def show(result: Result) -> str:
    counts = result.counts
    killed = counts["killed"] + counts["timeout"]
    return (
        f"{result.module.name:<26} {len(result.statuses):>4} mutants  killed {killed:>4}"
        f"  survived {counts['survived']:>3}  no tests {counts['no tests']:>3}"
        f"  equivalent {len(result.equivalent):>3}  score {result.score:5.1f}%  ({result.seconds:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="only these (e.g. hpcplane.api.signing)")
    parser.add_argument("--children", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--keep", type=Path, help="keep each module's work tree under this folder")
    args = parser.parse_args(argv)
    chosen = [m for m in MODULES if not args.modules or m.name in args.modules]
    results = []
    for module in chosen:
        result = run(module, args.children, args.keep)
        results.append(result)
        print(show(result), flush=True)
        for name in result.survivors:
            print(f"    survived: {name} ({result.statuses[name]})", flush=True)
    print()
    for result in results:
        print(show(result))
    below = [r.module.name for r in results if r.score < TARGET]
    if below:
        print(f"mutation: under the {TARGET:g}% target: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
