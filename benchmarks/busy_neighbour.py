"""The nmf separator on a quiet machine and beside a busy neighbour, with 1 and 2 torch threads, side by side.

The neighbour is a process this benchmark starts (a Python loop spinning on one core) and stops again after each
busy measurement. Conditions and thread counts are interleaved (quiet 1, quiet 2, busy 1, busy 2, and again) so
that slow drifts of a shared machine hit every cell alike; each cell reports the median real-time factor (compute
seconds per audio second) and its ratio to the quiet figure with the same threads.

Input: examples/audio/thunder_piano.wav (8 s, 44.1 kHz stereo), 2 sources, seed 0. A last pair of rows times the
default run end to end, `python -m maestro run examples/audio/thunder_piano.wav --no-cache` (with Python and torch
start-up, video encoding and all), quiet against busy, interleaved likewise.

    python benchmarks/busy_neighbour.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from maestro.components import RunContext  # noqa: E402
from maestro.separate.dsp import NMFSeparator  # noqa: E402
from maestro.types import Audio  # noqa: E402

SPIN = "while True: pass"


def load_example() -> Audio:
    import soundfile as sf

    data, rate = sf.read(REPO / "examples" / "audio" / "thunder_piano.wav", dtype="float32", always_2d=True)
    return Audio(torch.from_numpy(data.T.copy()), rate)


def timed(separator: NMFSeparator, mix: Audio) -> float:
    start = time.perf_counter()
    separator.separate(mix, 2, RunContext(seed=0))
    return time.perf_counter() - start


def timed_run(output: Path) -> float:
    """Wall seconds of the default `maestro run` on the example, as a user would start it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "maestro", "run", str(REPO / "examples" / "audio" / "thunder_piano.wav"),
               "--no-cache", "-q", "-o", str(output)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    mix = load_example()
    seconds = mix.samples.shape[-1] / mix.sample_rate
    variants = {1: NMFSeparator(threads=1), 2: NMFSeparator(threads=2)}
    timed(variants[1], mix)  # warm-up: first calls pay for allocations and lazy imports
    times: dict[tuple[str, int | str], list[float]] = {
        (c, t): [] for c in ("quiet", "busy") for t in [*variants, "run"]}
    output = Path(tempfile.mkdtemp(prefix="maestro-busy-"))
    for _ in range(args.repeats):
        for condition in ("quiet", "busy"):
            neighbour = subprocess.Popen([sys.executable, "-c", SPIN]) if condition == "busy" else None
            try:
                if neighbour is not None:
                    time.sleep(0.3)  # let it get going
                for threads, separator in variants.items():
                    times[(condition, threads)].append(timed(separator, mix))
                times[(condition, "run")].append(timed_run(output))
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    rtf = {key: statistics.median(v) / seconds for key, v in times.items()}
    print(f"nmf, {seconds:g} s stereo 44.1 kHz, K = 2, median of {args.repeats} interleaved runs, "
          f"{torch.get_num_threads()} cores seen by torch")
    print(f"{'threads':>8} {'quiet RTF':>10} {'busy RTF':>10} {'busy/quiet':>11}")
    for threads in variants:
        quiet, busy = rtf[("quiet", threads)], rtf[("busy", threads)]
        print(f"{threads:>8} {quiet:10.3f} {busy:10.3f} {busy / quiet:10.2f}x")
    print(f"busy, 2 threads / 1 thread: {rtf[('busy', 2)] / rtf[('busy', 1)]:.2f}x")
    quiet, busy = rtf[("quiet", "run")], rtf[("busy", "run")]
    print(f"default run end to end (wall, with start-up and video): quiet RTF {quiet:.3f}, busy RTF {busy:.3f}, "
          f"busy/quiet {busy / quiet:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({f"{c} {t}": v for (c, t), v in rtf.items()}, indent=2))


if __name__ == "__main__":
    main()
