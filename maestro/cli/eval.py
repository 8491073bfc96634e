"""`maestro eval OUT…`: is each sound in its region? Scores run folders and writes eval.json beside each manifest."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command(name="eval", context_settings={"max_content_width": 110})
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="OUT...")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (one folder: its report; several: a list and the means).")
def eval_command(folders: tuple[Path, ...], as_json: bool) -> None:
    """Score the output folders of `maestro run`: per-region loudness–flow correlation and AV-Align, region accuracy.

    \b
    Rows are the sources in manifest order, columns their regions; region accuracy is the share of sources whose own
    region scores highest. Writes OUT/eval.json for every folder.
    \b
    Examples:
      maestro eval out/run1
      maestro eval out/* --json > results.json
    """
    from maestro.eval import evaluate, write_report

    reports = []
    for folder in folders:
        report = evaluate(folder)
        write_report(folder, report)
        reports.append(report)
    means = _means(reports)
    if as_json:
        click.echo(json.dumps(reports[0] if len(reports) == 1 else {"runs": reports, "mean": means}, indent=2))
    else:
        _table(reports, means)


def _means(reports: list[dict]) -> dict[str, float | None]:
    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(sum(known) / len(known), 4) if known else None

    return {"region_accuracy": mean([r["regions"]["accuracy"] for r in reports]),
            "av_align": mean([r["av_align"] for r in reports]),
            "loudness_flow": mean([r["loudness_flow"] for r in reports]),
            "av_align_region_accuracy": mean([r["matrices"]["av_align"]["accuracy"] for r in reports])}


def _table(reports: list[dict], means: dict[str, float | None]) -> None:
    from rich.console import Console
    from rich.table import Table

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    metric = reports[0]["regions"]["metric"]
    table = Table(title=f"maestro eval (region accuracy by {metric}; whole video: AV-Align, loudness–flow)",
                  title_justify="left")
    table.add_column("run", overflow="fold")
    for column in ("sources", "accuracy", "by AV-Align", "AV-Align", "loudness–flow"):
        table.add_column(column, no_wrap=True)
    for r in reports:
        table.add_row(r["folder"], str(len(r["sources"])), cell(r["regions"]["accuracy"]),
                      cell(r["matrices"]["av_align"]["accuracy"]), cell(r["av_align"]), cell(r["loudness_flow"]))
    if len(reports) > 1:
        table.add_row("[bold]mean", "", cell(means["region_accuracy"]), cell(means["av_align_region_accuracy"]),
                      cell(means["av_align"]), cell(means["loudness_flow"]))
    console = Console()
    console.print(table)
    for r in reports:
        for note in r["notes"]:
            console.print(f"[yellow]note:[/] {r['folder']}: {note}")
