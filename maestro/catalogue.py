"""Known components that live in separately installed plugins (registry data `components.toml`), for `maestro plugins`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from maestro.registry_data import read_toml


@lru_cache(maxsize=1)
def known_components() -> list[dict[str, Any]]:
    return list(read_toml("components.toml").get("component", []))
