"""`maestro batch`: many runs, spread over the processes of an `accelerate launch`, resumable after a kill.

Jobs are the arguments of `maestro run`, parsed by that very command, so a job means exactly what the same command
line means. Each process builds every component once (`ComponentPool`) and keeps it for all its jobs, so models stay
loaded. A job whose folder already holds the complete result of the same job is skipped; a failing job is logged and
the others go on.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import click

from maestro.errors import ComponentUnavailableError, MaestroError, UsageError
from maestro.write.outputs import tidy

if TYPE_CHECKING:
    from maestro.pipeline import RunOptions
    from maestro.registry import ComponentSpec

LIST_SEPARATOR = ";"  # several inputs, or several KEY=VALUE options, in one CSV cell


@dataclass
class Job:
    id: str
    args: list[str]
    options: "RunOptions"
    line: int  # where the job is in the jobs file (1-based), for messages


@dataclass
class JobResult:
    id: str
    process: int
    status: str  # "ok", "failed", "skipped" (already done) or "pending" (--dry-run)
    seconds: float
    output: str
    error: str | None = None


class ComponentPool:
    """Builds each component once per (kind, name, options) and hands the same object to every later run.

    A component built with run context (the attention hook gets the run's layout) is built fresh each time: it belongs
    to that run.
    """

    def __init__(self) -> None:
        self._built: dict[tuple[str, str, str, str], Any] = {}
        self.builds = 0

    def __call__(self, spec: "ComponentSpec", options: dict[str, Any], **context: Any) -> Any:
        if context:
            self.builds += 1
            return spec.build(options, **context)
        key = (spec.kind, spec.name, spec.plugin, json.dumps(options, sort_keys=True, default=str))
        if key not in self._built:
            self.builds += 1
            self._built[key] = spec.build(options)
        return self._built[key]


# -- reading jobs ------------------------------------------------------------------------------------------------------
def read_jobs(path: Path) -> list[Job]:
    """Jobs from JSON lines (`{"args": [...], "id": "..."}`) or, for a `.csv` file, one job per row of run options."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the jobs file {path}: {exc}") from exc
    rows = _csv_rows(path, text) if path.suffix.lower() == ".csv" else _json_rows(path, text)
    jobs = [_job(path, line, job_id, args) for line, job_id, args in rows]
    if not jobs:
        raise UsageError(f"{path} holds no jobs")
    _check_unique(path, jobs)
    return jobs


def _json_rows(path: Path, text: str) -> Iterator[tuple[int, str | None, list[str]]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{line}: not JSON ({exc.msg}); "
                             "each line is {\"args\": [...], \"id\": ...}") from exc
        if not isinstance(entry, dict) or not isinstance(entry.get("args"), list) or not entry["args"]:
            raise UsageError(f"{path}:{line}: each line needs \"args\": a list of `maestro run` arguments")
        unknown = sorted(set(entry) - {"args", "id"})
        if unknown:
            raise UsageError(f"{path}:{line}: unknown key {', '.join(unknown)} (a job has \"args\" and \"id\")")
        job_id = entry.get("id")
        yield line, None if job_id is None else str(job_id), [str(a) for a in entry["args"]]


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, str | None, list[str]]]:
    """Columns are run options by name (`input`, `output`, `layout`, `no_cache`, `backbone_opt`, ...), plus `id`."""
    from maestro.cli.run import run

    options = {}
    for param in run.params:
        if isinstance(param, click.Option):
            for flag in param.opts:
                options[flag.lstrip("-").replace("-", "_")] = param
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    unknown = [c for c in columns if c not in options and c not in ("input", "audio", "id")]
    if unknown:
        raise UsageError(f"{path}: unknown column {', '.join(unknown)}; columns are `maestro run` options "
                         f"({', '.join(sorted(options))}), `input` and `id`")
    if "input" not in columns and "audio" not in columns:
        raise UsageError(f"{path}: needs an `input` column (several files per source: separated by '{LIST_SEPARATOR}')")
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        args = [p.strip() for p in (row.get("input") or row.get("audio") or "").split(LIST_SEPARATOR) if p.strip()]
        for column, value in row.items():
            if column in ("input", "audio", "id") or not value:
                continue
            param = options[column]
            flag = max(param.opts, key=len)
            if param.is_flag:
                if value.lower() in ("1", "true", "yes", "y"):
                    args.append(flag)
                elif value.lower() not in ("0", "false", "no", "n"):
                    raise UsageError(f"{path}:{line}: column {column} is a flag: use true or false, not {value!r}")
            elif param.multiple:
                for item in value.split(LIST_SEPARATOR):
                    args += [flag, item.strip()]
            else:
                args += [flag, value]
        yield line, row.get("id") or None, args


def _job(path: Path, line: int, job_id: str | None, args: list[str]) -> Job:
    from maestro.cli.run import parse_run_args

    try:
        options = parse_run_args(args)
    except click.ClickException as exc:
        raise UsageError(f"{path}:{line}: {exc.format_message()} (job args: {' '.join(args)})") from exc
    return Job(id=job_id or str(options.output), args=args, options=options, line=line)


def _check_unique(path: Path, jobs: list[Job]) -> None:
    for what, key in (("id", lambda j: j.id), ("output folder", lambda j: str(Path(j.options.output).resolve()))):
        seen: dict[str, int] = {}
        for job in jobs:
            if key(job) in seen:
                raise UsageError(f"{path}:{job.line}: the {what} {key(job)} is also job line {seen[key(job)]}'s; "
                                 "give each job its own -o folder and id")
            seen[key(job)] = job.line


# -- resuming ----------------------------------------------------------------------------------------------------------
def is_done(job: Job) -> bool:
    """The folder holds a complete run of the same job: same inputs (path and content), same options, every file."""
    from maestro.weights import cached_sha256

    folder = Path(job.options.output)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        recorded = {k: v for k, v in manifest["options"].items() if k not in _HOW_IT_RAN}
        inputs = manifest["inputs"]
        files = ["video.mp4", "layout.png", *(s["file"] for s in manifest["stems"])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    # A manifest from before an option existed ran with that option's default.
    recorded = {**{k: v for k, v in _defaults().items() if k not in recorded}, **recorded}
    if recorded != _recordable(job.options):
        return False
    if [i.get("path") for i in inputs] != [str(p) for p in job.options.inputs]:
        return False
    if any(i.get("sha256") != cached_sha256(Path(p)) for i, p in zip(inputs, job.options.inputs)):
        return False
    return all((folder / f).is_file() for f in files)


_HOW_IT_RAN = ("output", "device", "use_cache", "force")  # not what a job computes: a resumed job may run elsewhere


def _defaults() -> dict[str, Any]:
    from maestro.plan import RunOptions

    return _recordable(RunOptions(inputs=[]))


def _recordable(options: "RunOptions") -> dict[str, Any]:
    """The options as the manifest records them (JSON values), without inputs and how the job ran."""
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()
              if k != "inputs" and k not in _HOW_IT_RAN}
    return json.loads(json.dumps(values))


# -- running -----------------------------------------------------------------------------------------------------------
def run_jobs(jobs: list[Job], log: Path, dry_run: bool = False,
             show: Callable[[int, int], Any] | None = None) -> list[JobResult]:
    """Run this process's share of the pending jobs; returns every process's results (gathered), in job order.

    `show(process, total)` returns a context manager yielding `update(job_id, stage)`: the per-process progress.
    """
    state = process_state()
    from accelerate.utils import gather_object

    # Every process judges what is done before any of them writes, so all agree on the same pending list.
    done = {job.id for job in jobs if is_done(job)}
    state.wait_for_everyone()
    pending = [job for job in jobs if job.id not in done]
    results: list[JobResult] = []
    if state.is_main_process:
        results += [JobResult(job.id, state.process_index, "skipped", 0.0, str(job.options.output))
                    for job in jobs if job.id in done]
    with state.split_between_processes(pending) as mine:
        if dry_run:
            results += [JobResult(job.id, state.process_index, "pending", 0.0, str(job.options.output))
                        for job in mine]
        else:
            results += _run_mine(mine, state, log, show)
    if not dry_run:
        skipped = [r for r in results if r.status == "skipped"]
        for r in skipped:  # complete, but a run killed just after committing may have left its staging folder
            tidy(Path(r.output))
        _append_log(log, skipped)
    gathered = [asdict(r) for r in results]
    if state.num_processes > 1:
        gathered = gather_object(gathered)
        # Left to interpreter exit, gloo's threads can die mid-teardown and abort the process (SIGABRT).
        state.destroy_process_group()
    order = {job.id: i for i, job in enumerate(jobs)}
    return sorted((JobResult(**r) for r in gathered), key=lambda r: order[r.id])


def process_state() -> Any:
    """This process's place in the launch (accelerate's PartialState; one process when not launched).

    Without CUDA the processes talk over gloo: accelerate only picks it when told the run is on the CPU.
    """
    import torch

    try:
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env
    except ImportError as exc:
        raise ComponentUnavailableError(f"maestro batch needs accelerate ({exc}): "
                                        "pip install 'maestro[batch]'") from exc
    return PartialState(cpu=not torch.cuda.is_available() or parse_flag_from_env("ACCELERATE_USE_CPU"))


def _run_mine(mine: list[Job], state: Any, log: Path, show: Callable[[int, int], Any] | None) -> list[JobResult]:
    import contextlib

    from maestro.pipeline import Pipeline

    pool = ComponentPool()
    results = []
    progress = show(state.process_index, len(mine)) if show else contextlib.nullcontext(None)
    with progress as update:
        for job in mine:
            folder = Path(job.options.output)
            on_stage = (lambda stage, phase, job_id=job.id: update(job_id, stage if phase == "start" else None)) \
                if update else None
            start = time.perf_counter()
            error = None
            try:
                Pipeline(_placed(job.options, state), components=pool, on_stage=on_stage).run()
            except MaestroError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - one job's bug must not stop the others; it is logged
                error = f"internal error ({type(exc).__name__}: {exc})"
            result = JobResult(job.id, state.process_index, "failed" if error else "ok",
                               round(time.perf_counter() - start, 3), str(folder), error)
            _append_log(log, [result])
            results.append(result)
            if update:
                update(job.id, "done")
    return results


def _placed(options: "RunOptions", state: Any) -> "RunOptions":
    """On GPUs each process uses its own device (accelerate has picked it), not all of them cuda:0."""
    if getattr(state.device, "type", "cpu") == "cuda" and options.device in ("auto", "cuda"):
        return replace(options, device=str(state.device))
    return options


def _append_log(log: Path, results: list[JobResult]) -> None:
    """One JSON line per result, appended with a single write so that processes sharing the log do not interleave."""
    if not results:
        return
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = "".join(json.dumps({**asdict(r), "time": stamp}) + "\n" for r in results)
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
