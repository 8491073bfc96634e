"""`maestro run`: one recording (or one file per source) in, a video with its own region per sound out."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import click

from maestro.cli.options import parse_key_values

if TYPE_CHECKING:
    from maestro.pipeline import RunOptions

MAX_SEED = 2**63 - 1  # torch generators take 64 bits; components add small offsets to the seed


@click.command(context_settings={"max_content_width": 110})
@click.argument("audio", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=str), callback=lambda ctx, param, value: _folder(value),
              help="Folder for video.mp4, stems/, layout.png and manifest.json [default: maestro-out/<first input's "
                   "name>]. Maestro replaces only what its own earlier manifest there lists.")
@click.option("--force", is_flag=True, help="Replace files in the output folder that are in the way even if no Maestro "
                                            "manifest there lists them (they are deleted).")
@click.option("--separator", metavar="NAME", help="How to split the mixture (default: nmf; files for several inputs).")
@click.option("--sources", "-k", type=click.IntRange(min=1), help="Number of sources K (default: the separator's).")
@click.option("--encoder", default="spectral", show_default=True, metavar="NAME", help="Audio encoder.")
@click.option("--layout", default="auto", show_default=True, metavar="LR|TD|grid|auto|FILE",
              help="Layout planner name, or a JSON/YAML file of keyframed boxes.")
@click.option("--backbone", default="storyboard", show_default=True, metavar="NAME", help="Video backbone.")
@click.option("--hook", default="auto", show_default=True, metavar="NAME|none",
              help="Attention hook for diffusion backbones (auto: mosaic when installed).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="Backbone weights file (= --backbone-opt weights=PATH).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), callback=lambda ctx, param, value: _finite(value),
              help="Use only the first S seconds of audio.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Seed for every random choice in the run.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--profile", metavar="maestro|paper",
              help="Set profile= on every component that has one: paper = what the paper's released code computes.")
@click.option("--separator-opt", multiple=True, metavar="KEY=VALUE", help="Option for the separator (repeatable).")
@click.option("--encoder-opt", multiple=True, metavar="KEY=VALUE", help="Option for the audio encoder.")
@click.option("--layout-opt", multiple=True, metavar="KEY=VALUE", help="Option for the layout planner.")
@click.option("--backbone-opt", multiple=True, metavar="KEY=VALUE", help="Option for the backbone.")
@click.option("--hook-opt", multiple=True, metavar="KEY=VALUE", help="Option for the attention hook.")
@click.option("--overlay", is_flag=True, help="Also write overlay.mp4 with the regions drawn on the video.")
@click.option("--no-cache", is_flag=True, help="Recompute stems and tokens even if cached.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summary.")
def run(audio: tuple[Path, ...], output: Path | None, separator: str | None, sources: int | None, encoder: str, layout: str,
        backbone: str, hook: str, weights: str | None, seconds: float | None, seed: int, device: str,
        separator_opt: tuple[str, ...], encoder_opt: tuple[str, ...], layout_opt: tuple[str, ...],
        backbone_opt: tuple[str, ...], hook_opt: tuple[str, ...], overlay: bool, no_cache: bool, quiet: bool,
        force: bool, profile: str | None) -> None:
    """Make a video from AUDIO: one mixture, or one file per source (the paper's setting).

    \b
    Examples:
      maestro run mix.wav                                   # DSP default: no weights, CPU
      maestro run mix.wav --separator demucs --layout TD -o out/
      maestro run thunder.wav piano.wav --layout LR         # already separated: one file per source
      maestro run mix.wav -k 3 --layout grid --seconds 8
      maestro run mix.wav --layout boxes.yaml --overlay     # keyframed, moving boxes
      maestro run a.wav b.wav --encoder imagebind --backbone videocrafter2 --layout LR --profile paper

    Writes OUTPUT/video.mp4 (H.264 + AAC, the input audio muxed in), OUTPUT/stems/*.wav, OUTPUT/layout.png and
    OUTPUT/manifest.json — all at once at the end, so a failed or interrupted run leaves nothing half-written.
    """
    from maestro.pipeline import Pipeline

    run_options = to_run_options(click.get_current_context().params)
    if quiet:
        result = Pipeline(run_options).run()
    else:
        result = _run_with_progress(run_options)
        _summary(result)
    if quiet:
        click.echo(str(result.outputs.get("video.mp4")))


def parse_run_args(args: list[str]) -> "RunOptions":
    """The RunOptions of `maestro run ARGS...`, parsed and checked by this very command (so batch jobs cannot drift)."""
    with run.make_context("maestro run", list(args)) as ctx:
        return to_run_options(ctx.params)


def to_run_options(params: dict[str, Any]) -> "RunOptions":
    """`maestro run`'s parsed parameters (click's `ctx.params`) as the pipeline's RunOptions."""
    from maestro.pipeline import RunOptions

    audio: tuple[Path, ...] = params["audio"]
    backbone_opts = parse_key_values(params["backbone_opt"], "--backbone-opt")
    if params["weights"]:
        backbone_opts["weights"] = params["weights"]
    options = {
        "separator": parse_key_values(params["separator_opt"], "--separator-opt"),
        "audio_encoder": parse_key_values(params["encoder_opt"], "--encoder-opt"),
        "layout_planner": parse_key_values(params["layout_opt"], "--layout-opt"),
        "backbone": backbone_opts,
        "attention_hook": parse_key_values(params["hook_opt"], "--hook-opt"),
    }
    return RunOptions(
        inputs=list(audio), output=params["output"] or _default_output(audio[0]),
        separator=params["separator"], sources=params["sources"], encoder=params["encoder"], layout=params["layout"],
        backbone=params["backbone"], hook=None if params["hook"].lower() == "none" else params["hook"],
        options={k: v for k, v in options.items() if v}, seconds=params["seconds"], seed=params["seed"],
        device=params["device"], overlay=params["overlay"], use_cache=not params["no_cache"], force=params["force"],
        profile=params["profile"],
    )


def _default_output(first_input: Path) -> Path:
    # An input named "...wav" has the stem "..": never let the default folder climb out of maestro-out/.
    return Path("maestro-out") / (first_input.stem.lstrip(".") or "input")


def _folder(value: str | None) -> Path | None:
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("must name a folder (an empty name would mean the current one); give -o DIR")
    return Path(value)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number of seconds, not {value}")
    return value


def _run_with_progress(run_options: Any) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from maestro.pipeline import Pipeline

    console = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        stage_tasks: dict[str, Any] = {}

        def on_stage(stage: str, state: str) -> None:
            if state == "start":
                stage_tasks[stage] = progress.add_task(f"[bold]{stage}", total=1)
            else:
                progress.update(stage_tasks[stage], completed=1)

        @contextlib.contextmanager
        def task(description: str, total: int) -> Iterator[Any]:
            tid = progress.add_task(f"  {description}", total=total)
            try:
                yield lambda advance=1: progress.advance(tid, advance)
            finally:
                progress.update(tid, completed=total, visible=False)

        return Pipeline(run_options, task=task, on_stage=on_stage).run()


def _summary(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    m = result.manifest
    table = Table(title="maestro run", title_justify="left")
    for col in ("stage", "component", "seconds", "cache"):
        table.add_column(col)
    kind_of = {"separate": "separator", "encode": "audio_encoder", "layout": "layout_planner",
               "condition": "backbone", "generate": "backbone"}
    for stage, seconds in m["timings"].items():
        comp = m["components"].get(kind_of.get(stage, ""), {})
        name = comp.get("name", "")
        if stage == "generate" and m.get("attention_hook"):
            name += f" + {m['attention_hook']['name']}"
        table.add_row(stage, name, f"{seconds:.2f}", m["cache"].get(stage, ""))
    console = Console(stderr=True)
    console.print(table)
    for w in m["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"[green]wrote[/] {result.outputs['video.mp4'].parent}/ ({', '.join(sorted(result.outputs))})")
