"""`python -m maestro.train cim ...`: the same as `maestro train cim ...`, for launchers that take a module
(`torchrun -m maestro.train`, `accelerate launch -m maestro.train`)."""

import sys

from maestro.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main(["train", *sys.argv[1:]]))
