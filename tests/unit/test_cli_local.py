"""The local provider's commands: doctor's exit status and fix lines, node-shell's refusals."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from hpcplane.cli import main


def test_doctor_exits_non_zero_with_the_fix_for_what_is_missing(tmp_path: Path) -> None:
    """A public range can never be used: doctor says so, prints the export that fixes it, exits 1."""
    result = CliRunner().invoke(main, ["doctor", "--home", str(tmp_path), "--local-network", "8.8.0.0/16"])
    assert result.exit_code == 1
    assert "MISSING  address range: The address range 8.8.0.0/16 cannot be used" in result.output
    assert "fix: export HPCPLANE_LOCAL_NETWORK=10." in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("local provider: ")


def test_node_shell_refuses_an_unknown_cluster(tmp_path: Path) -> None:
    """No record under HPCPLANE_HOME/local: the cluster is named as not found, nothing is run."""
    result = CliRunner().invoke(main, ["node-shell", "--home", str(tmp_path), "ehpc-none", "compute0"])
    assert result.exit_code == 1
    assert "The specified cluster does not exist." in result.output
