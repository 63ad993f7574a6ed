"""`make mutation`: mutmut over the core modules, each against the unit and integration tests that reach it.

Each module is mutated in a copy of the tree of its own (so the worktree is never touched and one module's
results never mix with another's), with mutmut's test selection narrowed to that module's test files;
within them mutmut runs, for each mutant, only the tests that call the mutated function. The live-server
API tests are left out: they are slow, and the code they reach runs in a server process mutmut cannot
switch. Prints killed/survived per module, the survivors, and the mutants recorded as equivalent (in
tools/equivalent_mutants.toml, with a reason each); fails when a module's score is under the target.

Bounded in time: by default each module runs a sample of at most SAMPLE mutants (spread evenly over its
mutants in name order, so every function is represented; the same sample on every run), and each
module's run is stopped after BUDGET seconds, the mutants not reached being reported as "not run" and
left out of the score. `--all` runs every mutant; `--budget 0` removes the time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
SAMPLE = 100  # mutants per module by default (`--sample`); `--all` for every one
BUDGET = 900.0  # seconds per module by default (`--budget`), generation and the clean run included
_LIST_ONLY = "hpcplane_mutation_list_only"  # a mutant name matching nothing: mutmut generates, then stops


@dataclass(frozen=True)
class Module:
    """A core module and the test files whose tests may kill its mutants."""

    path: str  # under src/
    tests: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")


ENGINE_TESTS = (
    "tests/integration/test_engine_steps.py",
    "tests/integration/test_engine_outcomes.py",
    "tests/integration/test_engine_leases.py",
)
MODULES = (
    Module("hpcplane/api/params.py", ("tests/unit/test_params.py",)),
    Module(
        "hpcplane/api/signing.py",
        ("tests/unit/test_signing.py", "tests/unit/test_signing_guards.py", "tests/unit/test_authn.py"),
    ),
    Module("hpcplane/api/authn.py", ("tests/unit/test_authn.py", "tests/unit/test_authn_tokens.py")),
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
    # What issues 9 and 10 added at the same depth: the value rules, the request checks, the column
    # widths, the rate limiter, and the simulated scheduler of jobs.
    Module("hpcplane/api/values.py", ("tests/unit/test_values.py", "tests/unit/test_validation.py")),
    Module(
        "hpcplane/api/validation.py", ("tests/unit/test_request_checks.py", "tests/unit/test_validation.py")
    ),
    Module(
        "hpcplane/store/limits.py",
        (
            "tests/unit/test_column_limits.py",
            "tests/unit/test_request_checks.py",
            "tests/unit/test_validation.py",
        ),
    ),
    Module(
        "hpcplane/api/throttle.py", ("tests/unit/test_throttle.py", "tests/integration/test_ratelimits.py")
    ),
    Module("hpcplane/providers/simulated_jobs.py", ("tests/unit/test_simulated_jobs.py",)),
    # The engine in process (the live-server and crash tests reach it only in other processes).
    Module("hpcplane/engine/runner.py", ENGINE_TESTS),
    Module("hpcplane/engine/steps.py", ENGINE_TESTS),
)


@dataclass
class Result:
    """One module's mutants by status, and which survivors are recorded as equivalent."""

    module: Module
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> status
    equivalent: dict[str, str] = field(default_factory=dict)  # surviving mutant -> reason
    seconds: float = 0.0
    generated: int = 0  # mutants mutmut made of the module (the sample is drawn from them)

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
        considered = len(self.statuses) - len(self.equivalent) - self.counts["not run"]
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


def sample(names: list[str], size: int) -> list[str]:
    """At most `size` of `names`, spread evenly over them in name order (every function represented in
    proportion to its mutants); the same on every run."""
    ordered = sorted(names)
    if size <= 0 or size >= len(ordered):
        return ordered
    return [ordered[i * len(ordered) // size] for i in range(size)]


def mutmut(work: Path, log: Path, children: int, names: list[str], budget: float) -> bool:
    """Run `mutmut run` in `work` (its output appended to `log`); False when stopped at the budget."""
    env = {**os.environ, "CI": "true", "HPCPLANE_HYPOTHESIS_PROFILE": "mutation"}
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *names]
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            process.wait(timeout=budget if budget > 0 else None)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)  # mutmut stops its workers and keeps what it recorded
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return False


def run(module: Module, children: int, keep: Path | None, size: int, budget: float) -> Result:
    result = Result(module)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hpcplane-mutation-")) if keep is None else keep / module.name
    try:
        if work.exists() and keep is not None:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        workspace(module, work)
        log = work / "mutmut.log"
        meta = work / "mutants" / "src" / (module.path + ".meta")
        # First only generate the mutants and time the tests (a name matching none stops mutmut there),
        # then run the sample: mutmut keeps the timings, so the tests are not timed twice.
        mutmut(work, log, children, [_LIST_ONLY], budget)
        if not meta.exists():
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"mutmut wrote no results for {module.name}:\n{tail}")
        every: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        result.generated = len(every)
        chosen = sample(list(every), size)
        left = budget - (time.monotonic() - started) if budget > 0 else 0
        if budget > 0 and left <= 0:
            raise SystemExit(f"{module.name}: the budget of {budget:g} s ran out before any mutant ran")
        mutmut(work, log, children, chosen if len(chosen) < len(every) else [], left)
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if codes and all(codes[name] is None for name in chosen):
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"mutmut ran no mutant of {module.name} (its tests failed unmutated?):\n{tail}")
        result.statuses = {
            name: STATUS.get(code, "suspicious") if code is not None else "not run"
            for name, code in codes.items()
            if name in chosen
        }
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    recorded = equivalents()
    result.equivalent = {
        m: recorded[m] for m, s in result.statuses.items() if m in recorded and s not in ("killed", "not run")
    }
    result.seconds = time.monotonic() - started
    return result


def show(result: Result) -> str:
    counts = result.counts
    killed = counts["killed"] + counts["timeout"] + counts["caught by type check"]
    # Survived and "no tests" here leave out the mutants recorded as equivalent (counted apart).
    alive = Counter(result.statuses[name] for name in result.survivors)
    run = len(result.statuses) - counts["not run"]
    return (
        f"{result.module.name:<36} {run:>4} of {result.generated:>4} mutants  killed {killed:>4}"
        f"  survived {alive['survived'] + alive['suspicious'] + alive['skipped']:>3}"
        f"  no tests {alive['no tests']:>3}"
        f"  equivalent {len(result.equivalent):>3}  not run {counts['not run']:>3}"
        f"  score {result.score:5.1f}%  ({result.seconds:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="only these (e.g. hpcplane.api.signing)")
    parser.add_argument("--children", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--keep", type=Path, help="keep each module's work tree under this folder")
    parser.add_argument("--sample", type=int, default=SAMPLE, help=f"mutants per module (default {SAMPLE})")
    parser.add_argument("--all", action="store_true", help="every mutant of each module (no sample)")
    parser.add_argument(
        "--budget", type=float, default=BUDGET, help=f"seconds per module, 0 for none (default {BUDGET:g})"
    )
    args = parser.parse_args(argv)
    unknown = set(args.modules) - {m.name for m in MODULES}
    if unknown:
        parser.error(f"not in MODULES: {', '.join(sorted(unknown))}")
    chosen = [m for m in MODULES if not args.modules or m.name in args.modules]
    size = 0 if args.all else args.sample
    print(
        f"mutation: {len(chosen)} modules, {'every mutant' if size <= 0 else f'at most {size} mutants'} each,"
        f" {'no time limit' if args.budget <= 0 else f'at most {args.budget:g} s'} each",
        flush=True,
    )
    results = []
    for module in chosen:
        result = run(module, args.children, args.keep, size, args.budget)
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
