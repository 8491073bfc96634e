"""`maestro weights list|fetch|verify`, backed by registry/weights.toml."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from maestro.weights import WeightFile


@click.group("weights")
def weights_group() -> None:
    """Weight files: list what is known and present, download, verify sha256.

    Files from Hugging Face go to its cache ($HF_HOME/hub); others to $MAESTRO_WEIGHTS (~/.cache/maestro/weights).
    Offline, `maestro weights list` says which file to place where.
    """


@weights_group.command("list")
def list_weights() -> None:
    """Every known weight file, where it comes from, and whether it is on this machine."""
    from rich.console import Console
    from rich.table import Table

    from maestro import weights

    table = Table()
    for col in ("id", "file", "used by", "license", "sha256", "here"):
        table.add_column(col, overflow="fold")
    for wf in weights.catalogue().values():
        path = weights.local_path(wf.id)
        here = f"[green]{path}[/]" if path else f"[yellow]missing[/] — get {wf.source or '(see note)'}\nput at {wf.manual_path}"
        table.add_row(wf.id, wf.filename, wf.used_by, wf.license, _published(wf), here)
    Console().print(table)


def _published(wf: "WeightFile") -> str:
    if wf.sha256:
        return f"published ({wf.sha256[:12]}...)"
    if wf.sha256_prefix:
        return f"prefix only ({wf.sha256_prefix})"
    return "[yellow]unverified (no published sha256)[/]"


@weights_group.command("fetch")
@click.argument("ids", nargs=-1, required=True)
def fetch_weights(ids: tuple[str, ...]) -> None:
    """Download weight files by id (see `maestro weights list`)."""
    from maestro import weights

    for file_id in ids:
        path = weights.fetch(file_id)
        click.echo(f"{file_id}: {path}")


# Exit codes of `maestro weights verify` (2 stays click's usage error).
EXIT_CORRUPT, EXIT_UNVERIFIED = 1, 3
_COLOURS = {"ok": "green", "ok-prefix": "green", "unverified": "yellow", "missing": "yellow", "corrupt": "red"}


@weights_group.command("verify")
@click.argument("ids", nargs=-1)
def verify_weights(ids: tuple[str, ...]) -> None:
    """Check local weight files against their published sha256 and size (all known ones by default).

    \b
    Exit codes: 0 every file present matches its published hash (or hash prefix);
                1 a file is corrupt, or a file named on the command line is missing;
                3 none is corrupt, but one has no published sha256 to check (unverified).
    """
    from maestro import weights

    seen: set[str] = set()
    for file_id in ids or tuple(weights.catalogue()):
        status, path = weights.verify(file_id)
        if status != "missing" or ids:
            seen.add(status)
        label = click.style(weights.VERIFY_STATES[status], fg=_COLOURS[status])
        click.echo(f"{file_id}: {label}" + (f" ({path})" if path else ""))
    if "corrupt" in seen or "missing" in seen:
        raise SystemExit(EXIT_CORRUPT)
    if "unverified" in seen:
        raise SystemExit(EXIT_UNVERIFIED)
