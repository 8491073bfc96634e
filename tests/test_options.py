"""Declared options: one declaration gives the type, default, range or choices, and the message of a bad value."""

import pytest

from maestro.errors import UsageError
from maestro.options import REQUIRED, Option, declared_help, validate_options

DECLARED = {
    "steps": Option(int, 50, "DDIM steps", ge=1, le=1000),
    "sigma": Option(float, 1 / 3, "a fraction of the box side", ge=1e-6),
    "mode": Option(str, "all", "which rows", choices=("all", "start", "none")),
    "fast": Option(bool, False, "skip the slow part"),
    "stems": Option(list, ["drums", "bass"], "stems to keep"),
    "segment": Option(float, None, "seconds per chunk (none: the model's)", ge=0.1),
    "path": Option(str, REQUIRED, "a file"),
    "legacy": "help written before typed options (default 3)",
}


def test_strings_from_the_command_line_become_typed_values_and_defaults_fill_in():
    values = validate_options("separator 'x'", DECLARED, {"steps": "8", "sigma": "1/4", "mode": "START",
                                                           "fast": "yes", "path": "a.json", "legacy": "7"})
    assert values == {"steps": 8, "sigma": 0.25, "mode": "start", "fast": True, "stems": ["drums", "bass"],
                      "segment": None, "path": "a.json", "legacy": "7"}  # the legacy option stays a string
    assert validate_options("separator 'x'", DECLARED, {"path": "a", "stems": "vocals, drums"})["stems"] == \
        ["vocals", "drums"]


@pytest.mark.parametrize("given, message", [
    ({"steps": "many"}, "option steps='many': input should be a valid integer"),
    ({"steps": "0"}, "option steps='0': must be at least 1"),
    ({"sigma": "inf"}, "option sigma='inf': input should be a finite number"),
    ({"mode": "some"}, "option mode='some': must be one of 'all', 'start' or 'none'"),
    ({"fast": "maybe"}, "option fast='maybe': input should be a valid boolean"),
    ({"segment": "0"}, "option segment='0': must be at least 0.1"),
    ({"colour": "blue"}, "has no option colour"),
])
def test_a_bad_value_names_the_component_and_the_option(given, message):
    with pytest.raises(UsageError, match="separator 'x'") as caught:
        validate_options("separator 'x'", DECLARED, {"path": "a", **given})
    assert message in str(caught.value)


def test_a_required_option_must_be_given():
    with pytest.raises(UsageError, match="needs the option path"):
        validate_options("layout planner 'file'", DECLARED, {})


def test_help_shows_type_range_and_default():
    assert declared_help(DECLARED["steps"]) == "DDIM steps [1 ≤ int ≤ 1000; default 50]"
    assert declared_help(DECLARED["mode"]) == "which rows [all|start|none; default all]"
    assert declared_help(DECLARED["path"]) == "a file [str; required]"
    assert declared_help(DECLARED["legacy"]) == DECLARED["legacy"]
