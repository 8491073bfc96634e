"""Registry data shipped inside the package (so a wheel install has it): `weights.toml`, the weight files Maestro
knows, and `components.toml`, the plugins in this repository that may not be installed. `registry/` at the top of
the repository is a link to this folder."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any


def read_toml(name: str) -> dict[str, Any]:
    """A registry file, parsed. Missing data is a broken installation, never an empty catalogue."""
    try:
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise RuntimeError(f"Maestro's registry data {name} is missing from the installation ({exc}); "
                           "reinstall maestro") from exc
    return tomllib.loads(text)
