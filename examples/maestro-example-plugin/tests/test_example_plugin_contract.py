"""The example plugin's own tests: Maestro's contract checks (maestro.testing) on each of its components."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

import maestro_example.plugin  # noqa: E402
from maestro.errors import UsageError  # noqa: E402
from maestro.testing import check_layout_planner, check_separator, load_plugin

SPECS = load_plugin(maestro_example.plugin)


def test_bands_keeps_the_separator_contract():
    stems_by_k = check_separator(SPECS["bands"], {"crossover": "300"}, sources=(None, 1, 3))
    assert [len(s) for s in stems_by_k] == [2, 1, 3]


def test_bands_options_are_checked_before_building():
    with pytest.raises(UsageError, match="crossover"):
        check_separator(SPECS["bands"], {"crossover": "a lot"})


def test_diagonal_keeps_the_layout_contract():
    layouts = check_layout_planner(SPECS["diagonal"], sources=(1, 2, 4))
    assert layouts[-1].box(3, 0) == (0.75, 0.75, 1.0, 1.0)
