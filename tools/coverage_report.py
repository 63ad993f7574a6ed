"""The combined coverage data as figures: a summary line, the floor check and docs/coverage-report.md.

Run after `coverage combine` (see `make test` and `make coverage`). The floor is coverage's own
`[tool.coverage.report] fail_under` in pyproject.toml, over lines and branches together as coverage counts
them; the line and branch figures are printed apart, against the targets in docs/test-strength.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coverage


@dataclass(frozen=True)
class Figures:
    """Covered and total lines and branches of one file, or of all."""

    lines: int
    lines_total: int
    branches: int
    branches_total: int

    @staticmethod
    def of(summary: dict[str, Any]) -> Figures:
        return Figures(
            summary["covered_lines"],
            summary["num_statements"],
            summary["covered_branches"],
            summary["num_branches"],
        )

    @property
    def line_percent(self) -> float:
        return percent(self.lines, self.lines_total)

    @property
    def branch_percent(self) -> float:
        return percent(self.branches, self.branches_total)

    @property
    def together_percent(self) -> float:
        """What coverage's fail_under compares: lines and branches counted together."""
        return percent(self.lines + self.branches, self.lines_total + self.branches_total)


def percent(part: int, whole: int) -> float:
    return 100.0 if whole == 0 else 100.0 * part / whole


def measure(cov: coverage.Coverage) -> tuple[Figures, dict[str, Figures]]:
    """The totals and the figures of each measured file (paths relative to src/)."""
    report_path = Path(cov.config.data_file).with_name("coverage.json")
    cov.json_report(outfile=str(report_path))
    report = json.loads(report_path.read_text())
    files = {
        _module_path(name): Figures.of(entry["summary"]) for name, entry in sorted(report["files"].items())
    }
    return Figures.of(report["totals"]), files


def _module_path(name: str) -> str:
    marker = "hpcplane/"
    return name[name.index(marker) :] if marker in name else name


def summary_line(total: Figures, floor: float) -> str:
    return (
        f"coverage: lines {total.line_percent:.1f}% ({total.lines}/{total.lines_total}), "
        f"branches {total.branch_percent:.1f}% ({total.branches}/{total.branches_total}), "
        f"together {total.together_percent:.1f}% (floor {floor:g}%)"
    )


def markdown(total: Figures, files: dict[str, Figures], floor: float) -> str:
    """The report docs/coverage-report.md holds: the totals, then one row per module, lowest first."""
    rows = sorted(files.items(), key=lambda item: (item[1].together_percent, item[0]))
    lines = [
        "# Coverage report",
        "",
        "Written by `make coverage`: the whole suite under coverage, with the `hpcplane serve` and worker",
        "processes the tests start measured too (servers killed with SIGKILL by the crash tests write no",
        "data). The floor CI enforces is `[tool.coverage.report] fail_under` in pyproject.toml.",
        "",
        f"- {summary_line(total, floor).removeprefix('coverage: ')}",
        "",
        "| Module | Lines | Line % | Branches | Branch % |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, figures in rows:
        lines.append(
            f"| `{name}` | {figures.lines}/{figures.lines_total} | {figures.line_percent:.1f} "
            f"| {figures.branches}/{figures.branches_total} | {figures.branch_percent:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the per-module report (markdown) here")
    args = parser.parse_args(argv)
    cov = coverage.Coverage()
    cov.load()
    floor = float(cov.get_option("report:fail_under") or 0)  # type: ignore[arg-type]
    total, files = measure(cov)
    if args.write is not None:
        args.write.write_text(markdown(total, files, floor))
    print(summary_line(total, floor))
    if round(total.together_percent, 1) < floor:
        print(f"coverage: below the floor of {floor:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
