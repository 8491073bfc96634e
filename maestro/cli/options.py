"""Parsing helpers shared by commands."""

from __future__ import annotations

import click


def parse_key_values(values: tuple[str, ...], flag: str) -> dict[str, str]:
    """('a=1', 'b=x') -> {'a': '1', 'b': 'x'}; a missing '=' is a usage error naming the flag."""
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=flag)
        parsed[key.strip()] = value.strip()
    return parsed
