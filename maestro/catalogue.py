"""Known components that live in separately installed plugins (registry/components.toml), for `maestro plugins`."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from typing import Any

from maestro.weights import REGISTRY_DIR


@lru_cache(maxsize=1)
def known_components() -> list[dict[str, Any]]:
    path = REGISTRY_DIR / "components.toml"
    if not path.exists():
        return []
    with path.open("rb") as f:
        return list(tomllib.load(f).get("component", []))
