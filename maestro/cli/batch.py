"""`maestro batch JOBS`: many `maestro run`s, over every process of an `accelerate launch`, resumable."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import click


@click.command(context_settings={"max_content_width": 110})
@click.argument("jobs", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--log", type=click.Path(dir_okay=False, path_type=Path),
              help="Batch log, JSON lines (id, process, status, seconds, error) [default: JOBS.log.jsonl].")
@click.option("--dry-run", is_flag=True, help="List what would run (and what is already done), run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summary table.")
def batch(jobs: Path, log: Path | None, dry_run: bool, quiet: bool) -> int:
    """Run every job in JOBS, skipping those whose output folder already holds the same finished run.

    \b
    JOBS is JSON lines, one job a line: {"args": [...the arguments of maestro run...], "id": "optional"};
    or a .csv whose columns are run options: input (several files: a;b), output, layout, seconds, backbone_opt, ...
    Paths are relative to the current folder, as on the command line.
    \b
    Examples:
      maestro batch jobs.jsonl
      maestro batch testset.csv --dry-run
      accelerate launch --num_processes 4 -m maestro batch jobs.jsonl      # one process per GPU
    \b
    Each process builds its components once and keeps them for all its jobs. A failed job is logged and the others
    go on; the exit code is 1 if any job failed. Re-running the same command finishes what a killed launch left.
    """
    from maestro.batch import process_state, read_jobs, run_jobs

    job_list = read_jobs(jobs)
    log = log or jobs.with_name(jobs.stem + ".log.jsonl")
    main_process = process_state().is_main_process
    results = run_jobs(job_list, log, dry_run=dry_run, show=None if quiet else _progress)
    if main_process and not (quiet and not dry_run):
        _summary(results, dry_run, log)
    return 1 if any(r.status == "failed" for r in results) else 0


@contextlib.contextmanager
def _progress(process: int, total: int) -> Iterator[Any]:
    """One bar per process: its jobs done, the current job and stage."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]process {process}"), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True)) as progress:
        task = progress.add_task("", total=total)

        def update(job_id: str, stage: str | None) -> None:
            if stage == "done":
                progress.update(task, advance=1, description=job_id)
            elif stage:
                progress.update(task, description=f"{job_id}: {stage}")

        yield update


def _summary(results: list, dry_run: bool, log: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=not dry_run)  # a dry run's list is the command's output
    table = Table(title="maestro batch" + (" --dry-run" if dry_run else ""), title_justify="left")
    for column in ("job", "process", "status", "seconds", "output", "error"):
        table.add_column(column, overflow="fold")
    style = {"ok": "green", "failed": "red", "skipped": "dim", "pending": "yellow"}
    for r in results:
        status = "would run" if r.status == "pending" else ("done, skipped" if r.status == "skipped" else r.status)
        table.add_row(r.id, str(r.process), f"[{style[r.status]}]{status}", f"{r.seconds:.1f}", r.output, r.error or "")
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in style}
    if dry_run:
        console.print(f"{counts['pending']} to run, {counts['skipped']} already done")
    else:
        console.print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already done; log: {log}")
