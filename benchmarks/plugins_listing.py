"""How long `maestro plugins` takes next to starting Python with click imported, measured side by side.

Runs are interleaved (A, B, A, B, ...) so that machine noise hits both alike; the ratio of medians is what counts.
Target: maestro plugins ≤ 4 × `python -c "import click"`, and ≤ 0.6 s wall.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15
COMMANDS = {
    "import click": [sys.executable, "-c", "import click"],
    "maestro plugins": [sys.executable, "-m", "maestro", "plugins"],
    "maestro plugins --json": [sys.executable, "-m", "maestro", "plugins", "--json"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():  # warm the file cache once
        wall(cmd)
    for _ in range(RUNS):
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["import click"])
    print(f"{'command':<26}{'median s':>10}{'min s':>10}{'ratio':>8}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<26}{med:>10.3f}{min(values):>10.3f}{med / base:>8.2f}")
    print(f"plugins/click = {statistics.median(times['maestro plugins']) / base:.2f}")


if __name__ == "__main__":
    main()
