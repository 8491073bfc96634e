"""`maestro batch` throughput with 1 and 2 processes, side by side, then `maestro eval` on the example runs.

Throughput: the same JOBS (the example mixture through the DSP default — nmf, spectral, storyboard —, all with seed 0,
so every job does the same work, and --no-cache, so each does all of it) run as
  A  `maestro batch JOBS`                                          one process, 2 torch threads (the default here)
  B  the same with OMP_NUM_THREADS=1                               one process, 1 thread
  C  `accelerate launch --multi_gpu --num_processes 2 -m maestro batch JOBS`   two processes, 1 thread each (gloo)
interleaved A, B, C, A, B, C, ... into fresh output folders, after one uncounted warm-up round of each; wall time includes
start-up (imports, process launch).

Eval: the example runs (per-source files with LR and TD, the mixture with nmf and LR / TD / auto, and two-source runs
of ../shared/audio) are made with one `maestro batch`, then scored with `maestro eval --json`.

    python benchmarks/batch.py [--jobs 8] [--rounds 2] [--seconds 4] [--skip-throughput] [--skip-eval]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO / "examples" / "audio"
SHARED = REPO.parent / "shared" / "audio"
SHARED_RUNS = [(("dog", "drum"), "LR"), (("cello", "thunder"), "TD"), (("guitar", "car"), "LR"),
               (("violin", "trumpet"), "TD"), (("cat", "piano"), "TD"), (("ambulance", "female_singing"), "LR"),
               (("drum", "violin"), "TD"), (("trumpet", "dog"), "LR"), (("dog", "drum", "violin"), "grid"),
               (("cat", "car", "cello", "guitar"), "grid")]
METRICS = ("loudness_flow", "onset_flow", "av_align")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maestro-bench-batch-") as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            throughput(work, args.jobs, args.rounds, args.seconds)
        if not args.skip_eval:
            evaluate_examples(work)


def _env(threads: int) -> dict[str, str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("MAESTRO_CACHE", str(Path(tempfile.gettempdir()) / "maestro-bench-cache"))
    return env


def _write_jobs(path: Path, jobs: list[list[str]]) -> Path:
    path.write_text("".join(json.dumps({"args": a, "id": Path(a[a.index("-o") + 1]).name}) + "\n" for a in jobs))
    return path


def throughput(work: Path, count: int, rounds: int, seconds: float) -> None:
    commands = {
        "1 process, 2 threads": [sys.executable, "-m", "maestro", "batch"],
        "1 process, 1 thread": [sys.executable, "-m", "maestro", "batch"],
        "2 processes, 1 thread each": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                        "-m", "maestro", "batch"],
    }
    threads = {"1 process, 2 threads": 2, "1 process, 1 thread": 1, "2 processes, 1 thread each": 1}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for r in range(-1, rounds):  # round -1 warms the disk cache and imports, and is not counted
        for name, command in commands.items():  # interleaved: A, B, A, B, ...
            out = work / f"throughput-{r}-{name.replace(' ', '-').replace(',', '')}"
            jobs = _write_jobs(out.with_suffix(".jsonl"), [
                [str(AUDIO / "thunder_piano.wav"), "-o", str(out / f"job{i}"), "--seconds", str(seconds),
                 "--no-cache"] for i in range(count)])
            port = ["--main_process_port", str(_free_port())] if "accelerate.commands.launch" in command else []
            start = time.perf_counter()
            launch = [*command[:-3], *port, *command[-3:]]  # the port goes to the launcher, before `-m maestro`
            result = subprocess.run([*launch, str(jobs), "-q"], capture_output=True, text=True, env=_env(threads[name]))
            if r >= 0:
                times[name].append(time.perf_counter() - start)
            if result.returncode != 0:
                sys.exit(f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[:4000]}")
    base = statistics.median(times["1 process, 2 threads"])
    print(f"## batch throughput: {count} jobs (thunder_piano.wav, {seconds:g} s, nmf + storyboard, --no-cache), "
          f"median of {rounds} interleaved rounds after a warm-up round, {os.cpu_count()} CPU cores\n")
    print("| launch | median wall time | jobs / minute | speed-up |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} s | {60 * count / median:.1f} | {base / median:.2f}× |")
    print(f"\nall rounds (s): " + "; ".join(f"{n}: {', '.join(f'{v:.1f}' for v in t)}" for n, t in times.items()))


def evaluate_examples(work: Path) -> None:
    out = work / "examples"
    jobs = [[str(AUDIO / "piano.wav"), str(AUDIO / "thunder.wav"), "--layout", layout, "-o",
             str(out / f"piano+thunder-{layout}")] for layout in ("LR", "TD")]
    jobs += [[str(AUDIO / "thunder_piano.wav"), "--layout", layout, "-o", str(out / f"thunder_piano-nmf-{layout}")]
             for layout in ("LR", "TD", "auto")]
    if SHARED.is_dir():
        jobs += [[*(str(SHARED / f"{name}.wav") for name in names), "--layout", layout, "-o",
                  str(out / f"{'+'.join(names)}-{layout}")] for names, layout in SHARED_RUNS]
    made = subprocess.run([sys.executable, "-m", "maestro", "batch", str(_write_jobs(work / "examples.jsonl", jobs)),
                           "-q"], capture_output=True, text=True, env=_env(2))
    if made.returncode != 0:
        sys.exit(f"the example runs failed:\n{made.stderr[-3000:]}")
    folders = [args[args.index("-o") + 1] for args in jobs]
    scored = subprocess.run([sys.executable, "-m", "maestro", "eval", *folders, "--json"], capture_output=True,
                            text=True, env=_env(2))
    if scored.returncode != 0:
        sys.exit(f"maestro eval failed:\n{scored.stderr[-3000:]}")
    runs = json.loads(scored.stdout)["runs"]
    print("\n## maestro eval on the example runs (storyboard, 512×320 at 8 fps, full length)\n")
    print("Region accuracy by each per-region metric (share of sources whose own region scores highest), and the "
          "whole-video AV-Align.\n")
    print(f"| run | K | {' | '.join(METRICS)} | AV-Align, whole video | onsets per source | motion peaks per region |")
    print("| --- | --- |" + " --- |" * (len(METRICS) + 3))
    for run in runs:
        accuracies = " | ".join(f"{run['matrices'][m]['accuracy']:.2f}" for m in METRICS)
        peaks = run["peaks"]
        print(f"| {Path(run['folder']).name} | {len(run['sources'])} | {accuracies} | {_cell(run['av_align'])} | "
              f"{_span(peaks['onsets'])} | {_span(peaks['motion'])} |")
    means = " | ".join(f"**{statistics.mean(r['matrices'][m]['accuracy'] for r in runs):.2f}**" for m in METRICS)
    whole = [r["av_align"] for r in runs if r["av_align"] is not None]
    print(f"| **mean of {len(runs)}** | | {means} | {_cell(statistics.mean(whole) if whole else None)} | | |")


def _span(values: list[int]) -> str:
    return f"{min(values)}–{max(values)}" if min(values) != max(values) else str(values[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
