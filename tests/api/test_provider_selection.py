"""`--provider`: a flag of serve and worker; `local` refuses to start, with doctor's report, when the
machine lacks what it needs (here: an address range that is not private)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hpcplane.cli import main


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_provider_is_a_flag(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "--provider [simulated|local]" in result.output


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_local_refuses_to_start_with_doctors_report(command: str, tmp_path: Path) -> None:
    env = {"HPCPLANE_HOME": str(tmp_path), "HPCPLANE_LOCAL_NETWORK": "8.8.0.0/16"}
    result = CliRunner().invoke(main, [command, "--provider", "local"], env=env)
    assert result.exit_code == 1
    assert "MISSING  address range" in result.output
    assert "fix: export HPCPLANE_LOCAL_NETWORK=" in result.output
    assert "--provider local needs what is MISSING above" in result.output
    assert not (tmp_path / "hpcplane.db").exists()  # refused before the store was opened
