"""`maestro weights list|fetch|verify`, backed by registry/weights.toml."""

from __future__ import annotations

import click


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
    for col in ("id", "file", "used by", "license", "here"):
        table.add_column(col, overflow="fold")
    for wf in weights.catalogue().values():
        path = weights.local_path(wf.id)
        here = f"[green]{path}[/]" if path else f"[yellow]missing[/] — get {wf.source or '(see note)'}\nput at {wf.manual_path}"
        table.add_row(wf.id, wf.filename, wf.used_by, wf.license, here)
    Console().print(table)


@weights_group.command("fetch")
@click.argument("ids", nargs=-1, required=True)
def fetch_weights(ids: tuple[str, ...]) -> None:
    """Download weight files by id (see `maestro weights list`)."""
    from maestro import weights

    for file_id in ids:
        path = weights.fetch(file_id)
        click.echo(f"{file_id}: {path}")


@weights_group.command("verify")
@click.argument("ids", nargs=-1)
def verify_weights(ids: tuple[str, ...]) -> None:
    """Check the sha256 of local weight files (all known ones by default). Exit 1 if any is corrupt."""
    from maestro import weights

    failed = False
    for file_id in ids or tuple(weights.catalogue()):
        status, path = weights.verify(file_id)
        failed |= status == "corrupt"
        click.echo(f"{file_id}: {status}" + (f" ({path})" if path else ""))
    if failed:
        raise SystemExit(1)
