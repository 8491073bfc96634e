"""The default `maestro run` with OpenMP's idle threads spinning (ACTIVE, libgomp's default) or sleeping (PASSIVE, what
the `maestro` command sets unless OMP_WAIT_POLICY is already set), on a quiet machine and beside a busy neighbour.

A spinning thread holds a core that another process needs; with one core taken by a neighbour, torch's second thread
spins for it instead of yielding. The neighbour is a process this benchmark starts and stops; policies and conditions
are interleaved (quiet ACTIVE, quiet PASSIVE, busy ACTIVE, busy PASSIVE, and again) so that drifts of a shared
machine hit every cell alike. Each cell is the median wall time of `python -m maestro run
examples/audio/thunder_piano.wav --no-cache` (8 s of audio, start-up and video encoding included).

    python benchmarks/omp_wait_policy.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_run(policy: str, output: Path) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "maestro", "run", str(REPO / "examples" / "audio" / "thunder_piano.wav"),
               "--no-cache", "-q", "--force", "-o", str(output)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cells: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        timed_run("PASSIVE", out)  # warm the file cache and the .pyc files
        for _ in range(args.repeats):
            for condition in ("quiet", "busy"):
                neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "busy" else None
                try:
                    for policy in ("ACTIVE", "PASSIVE"):
                        cells.setdefault((condition, policy), []).append(timed_run(policy, out))
                finally:
                    if neighbour is not None:
                        neighbour.kill()
                        neighbour.wait()
    print(f"default run, 8 s of audio, {os.cpu_count()} cores, median of {args.repeats}")
    print(f"{'condition':<10}{'ACTIVE s':>10}{'PASSIVE s':>11}{'ACTIVE/PASSIVE':>16}")
    for condition in ("quiet", "busy"):
        active = statistics.median(cells[(condition, "ACTIVE")])
        passive = statistics.median(cells[(condition, "PASSIVE")])
        print(f"{condition:<10}{active:>10.2f}{passive:>11.2f}{active / passive:>16.2f}")
    quiet, busy = (statistics.median(cells[(c, "PASSIVE")]) for c in ("quiet", "busy"))
    print(f"PASSIVE busy/quiet = {busy / quiet:.2f}")


if __name__ == "__main__":
    main()
