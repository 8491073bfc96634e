"""Turn the CLI's string options into typed values, with a `UsageError` that names the option on a bad value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

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
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _number(value)
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
    names = _split_names(value)
    if not names:
        raise UsageError(f"option {name} takes a comma-separated list of names, not {value!r}")
    return names


def _number(text: Any) -> float:
    """A number written as text, also as a fraction ("1/3"); ValueError or ZeroDivisionError otherwise."""
    top, slash, bottom = str(text).strip().partition("/")
    return float(top) / float(bottom) if slash else float(top)


def _split_names(value: Any) -> list[str]:
    """Names from "drums, vocals" or a list, without empty items."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


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


# -- declared options ------------------------------------------------------------------------------------------------
# A component declares each option once, in its ComponentSpec: `Option(int, 200, "NMF iterations", ge=1)`. The
# declaration is a plain dataclass, so registering and listing stay cheap; values are converted and validated by
# pydantic, imported only when a run (or `maestro info`) needs it.

REQUIRED: Any = object()  # `Option(Path, REQUIRED, ...)`: the user must give it


@dataclass(frozen=True)
class Option:
    """One option of a component: its type, default, help and allowed values.

    `type` is int, float, bool, str, pathlib.Path or list (a comma-separated list of names). Floats also accept
    fractions ("1/3") and never inf or NaN. `ge`/`le` bound numbers; `choices` lists the allowed strings.
    """

    type: type
    default: Any = None
    help: str = ""
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise ValueError(f"Option type must be one of {', '.join(_TYPE_NAMES.values())}, not {self.type!r}")
        if self.choices and self.type is not str:
            raise ValueError("choices go with type str")
        if isinstance(self.default, list):  # declarations are hashable (validation models are cached by them)
            object.__setattr__(self, "default", tuple(self.default))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """One line for `maestro info`: the help, then type, range or choices, and default."""
        if self.choices:
            kind = "|".join(self.choices)
        else:
            kind = _TYPE_NAMES[self.type]
            if self.ge is not None or self.le is not None:
                low = "" if self.ge is None else f"{self.ge:g} ≤ "
                high = "" if self.le is None else f" ≤ {self.le:g}"
                kind = f"{low}{kind}{high}"
        default = "required" if self.required else f"default {_shown(self.default)}"
        return f"{self.help} [{kind}; {default}]".strip()


_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str", Path: "path", list: "list"}


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def declared_help(declaration: "Option | str") -> str:
    """What `maestro info` prints for an option: a typed declaration's summary, or a legacy help string as it is."""
    return declaration.describe() if isinstance(declaration, Option) else declaration


def validate_options(owner: str, declared: Mapping[str, "Option | str"], given: Mapping[str, Any]) -> dict[str, Any]:
    """The values a factory receives: every typed option (converted, checked, defaults filled in) and the legacy
    help-string options the user gave (unchanged: their factory converts them, as before). `owner` names the
    component in messages ("separator 'nmf'")."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise UsageError(f"{owner} has no option {', '.join(unknown)} (options: {known})")
    typed = {name: opt for name, opt in declared.items() if isinstance(opt, Option)}
    values = {name: value for name, value in given.items() if name not in typed}
    if typed:
        values.update(_typed_values(owner, typed, {k: v for k, v in given.items() if k in typed}))
    return values


def _typed_values(owner: str, typed: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    missing = [name for name, opt in typed.items() if opt.required and name not in given]
    if missing:
        raise UsageError(f"{owner} needs the option {', '.join(missing)}")
    import pydantic

    model = _model(owner, tuple(typed.items()))
    try:
        parsed = model.model_validate(dict(given))
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"option {name}={given.get(name)!r}: {_plain(err)}")
        raise UsageError(f"{owner}: " + "; ".join(problems)) from None
    return parsed.model_dump()


def _plain(err: Any) -> str:
    """pydantic's message, minus its wording about Python types."""
    ctx = err.get("ctx") or {}
    if err["type"] == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if err["type"] in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        return f"must be {'at least' if err['type'] == 'greater_than_equal' else 'at most'} {bound}"
    msg = str(err["msg"])
    return msg[0].lower() + msg[1:] if msg else "is not valid"


@lru_cache(maxsize=256)
def _model(owner: str, fields: tuple[tuple[str, Option], ...]) -> Any:
    from typing import Annotated, Literal

    import pydantic

    definitions: dict[str, Any] = {}
    for name, opt in fields:
        annotation: Any
        validators: list[Any] = []
        if opt.choices:
            annotation = Literal[opt.choices]  # type: ignore[valid-type]
            validators.append(pydantic.BeforeValidator(lambda v, c=opt.choices: _choice(v, c)))
        elif opt.type is float:
            annotation = float
            validators.append(pydantic.BeforeValidator(_fraction))
        elif opt.type is list:
            annotation = list[str]
            validators.append(pydantic.BeforeValidator(_names))
        elif opt.type is bool:
            annotation = bool
        else:
            annotation = opt.type
        field = pydantic.Field(ge=opt.ge, le=opt.le, allow_inf_nan=False if opt.type is float else None)
        full: Any = Annotated[annotation, *validators, field]  # type: ignore[valid-type]
        if opt.default is None and not opt.required:
            full = full | None  # the bounds apply to a value, not to "none given"
        definitions[name] = (full, ... if opt.required else opt.default)
    config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=True, validate_default=True)
    return pydantic.create_model(f"Options[{owner}]", __config__=config, **definitions)


def _choice(value: Any, choices: tuple[str, ...]) -> Any:
    """A choice as declared, whatever its case ("ALL" → "all")."""
    if isinstance(value, str):
        folded = {c.lower(): c for c in choices}
        return folded.get(value.strip().lower(), value)
    return value


def _fraction(value: Any) -> Any:
    """ "1/3" → 0.333…, so that defaults written as fractions can be typed as they read."""
    if isinstance(value, str) and "/" in value:
        try:
            return _number(value)
        except (ValueError, ZeroDivisionError):
            return value  # pydantic reports it
    return value


def _names(value: Any) -> Any:
    return _split_names(value) if isinstance(value, str) else value
