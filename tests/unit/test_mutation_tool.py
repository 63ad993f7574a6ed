"""`make mutation`'s own table and sample (tools/mutation.py): what it runs is what the docs say."""

from __future__ import annotations

from pathlib import Path

from tools import mutation

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_and_test_file_of_the_table_exists() -> None:
    """A module or test file renamed away would silently leave the run (the workspace skips missing
    test files): each one named in MODULES is there."""
    for module in mutation.MODULES:
        assert (ROOT / "src" / module.path).is_file(), module.path
        for test in module.tests:
            assert (ROOT / test).is_file(), (module.path, test)


def test_recorded_equivalents_name_modules_of_the_table_each_with_a_reason() -> None:
    """Every equivalent mutant belongs to a module in MODULES and says why it is equivalent."""
    names = {module.name for module in mutation.MODULES}
    recorded = mutation.equivalents()
    assert recorded
    for mutant, reason in recorded.items():
        assert mutant.rsplit(".", 1)[0] in names, mutant
        assert "__mutmut_" in mutant, mutant
        assert len(reason) > 20, mutant


def test_the_sample_is_spread_evenly_and_the_same_every_time() -> None:
    """At most `size` names, in name order, spread over all of them; every name when size is 0 or
    at least their number."""
    names = [f"m.x_f__mutmut_{i:03d}" for i in range(300)]
    shuffled = names[::-1]
    chosen = mutation.sample(shuffled, 100)
    assert chosen == names[::3]
    assert mutation.sample(shuffled, 100) == chosen
    assert mutation.sample(shuffled, 0) == names
    assert mutation.sample(shuffled, 300) == names
    assert mutation.sample(shuffled, 1000) == names
    assert mutation.sample(names[:7], 3) == [names[0], names[2], names[4]]
