"""Turn the CLI's string options into typed values, with a `UsageError` that names the option on a bad value."""

from __future__ import annotations

import math
from typing import Any

from maestro.errors import UsageError


def as_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise UsageError(f"option {name} takes a whole number, not {value!r}") from None
    _check_range(name, number, minimum, maximum)
    return number


def as_float(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    """A number, also written as a fraction ("1/3") since some defaults are."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            top, slash, bottom = str(value).strip().partition("/")
            number = float(top) / float(bottom) if slash else float(top)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"option {name} takes a number, not {value!r}") from None
    if not math.isfinite(number):
        raise UsageError(f"option {name} takes a finite number, not {value!r}")
    _check_range(name, number, minimum, maximum)
    return number


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"option {name} takes true or false, not {value!r}")


def as_list(name: str, value: Any) -> list[str]:
    """A comma-separated list ("drums,vocals") or a Python list, without empty items."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = [str(i).strip() for i in items if str(i).strip()]
    if not names:
        raise UsageError(f"option {name} takes a comma-separated list of names, not {value!r}")
    return names


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise UsageError(f"option {name} must be at least {minimum}, not {number}")
    if maximum is not None and number > maximum:
        raise UsageError(f"option {name} must be at most {maximum}, not {number}")


def check_sources(sources: int | None, default: int, available: int | None = None, what: str = "") -> int:
    """The number of sources to make: `sources` (or `default`), at least 1 and at most `available` when given."""
    k = default if sources is None else sources
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UsageError(f"the number of sources must be a whole number ≥ 1, not {sources!r}")
    if available is not None and k > available:
        raise UsageError(
            f"{what or 'this separator'} gives at most {available} sources, but {k} were asked for: "
            f"ask for fewer sources or choose another separator"
        )
    return k
