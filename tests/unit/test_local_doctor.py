"""`hpcplane doctor`: each missing requirement reported with the command that fixes it."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

from hpcplane.providers.local import doctor
from hpcplane.providers.local.doctor import CAP_NET_ADMIN, CAP_SYS_ADMIN, Probe

ALL_CAPS = (1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN)


def _probe(*, missing: tuple[str, ...] = (), caps: int = ALL_CAPS, accounts: bool = True) -> Probe:
    return Probe(
        which=lambda name: None if name in missing else f"/usr/bin/{name}",
        effective_caps=lambda: caps,
        account_exists=lambda name: accounts,
        routes=lambda: [IPv4Network("192.0.2.0/24"), IPv4Network("10.247.0.0/16")],
    )


def _by_name(results: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {check.name: check for check in results}


def test_a_ready_machine_has_nothing_missing(tmp_path: Path) -> None:
    """Everything present and a free range: every check ok, the summary says ready."""
    results = doctor.checks(_probe(), "10.248.0.0/16", tmp_path)
    assert all(check.ok for check in results if check.name != "home")
    assert doctor.render([c for c in results if c.name != "home"]).endswith("local provider: ready")


def test_missing_packages_get_one_apt_command() -> None:
    """Programs map to their Debian packages; the fix installs exactly those, without recommends."""
    check = _by_name(doctor.checks(_probe(missing=("slurmd", "srun", "munged")), "10.248.0.0/16", Path("/")))
    assert not check["packages"].ok
    assert check["packages"].fix == (
        "apt-get update && apt-get install -y --no-install-recommends munge slurm-client slurmd"
    )


def test_missing_capabilities_say_run_as_root() -> None:
    """Without CAP_NET_ADMIN the privileges check fails with its fix."""
    check = _by_name(doctor.checks(_probe(caps=1 << CAP_SYS_ADMIN), "10.248.0.0/16", Path("/")))
    assert not check["privileges"].ok
    assert "root" in check["privileges"].fix


def test_an_overlapping_range_gets_a_free_one_suggested() -> None:
    """The range overlaps a route: the fix exports a /16 that overlaps none."""
    check = _by_name(doctor.checks(_probe(), "10.247.0.0/16", Path("/")))["address range"]
    assert not check.ok
    assert "10.247.0.0/16" in check.detail
    suggested = IPv4Network(check.fix.split("=", 1)[1])
    assert not suggested.overlaps(IPv4Network("10.247.0.0/16"))


def test_a_home_closed_to_other_users_is_reported(tmp_path: Path) -> None:
    """Job users must traverse HPCPLANE_HOME: a 0700 directory above it is named with its chmod."""
    closed = tmp_path / "closed"
    (closed / "home").mkdir(parents=True)
    closed.chmod(0o700)
    check = _by_name(doctor.checks(_probe(), "10.248.0.0/16", closed / "home"))["home"]
    assert not check.ok
    assert check.fix.startswith("chmod o+x ")
    rendered = doctor.render([check])
    assert "MISSING" in rendered
    assert "fix: chmod o+x" in rendered
