"""Torch CPU threads chosen per workload, and denormal flushing, for one block of work, then put back.

Why: torch's intra-op threads (OpenMP) spin-wait for each other. When a matrix is small, splitting it gains little,
and when another process holds a core, the thread that lands there stalls every parallel step
(`benchmarks/busy_neighbour.py` measures it side by side; docs/benchmarks.md has the figures). Denormal flushing:
NMF's multiplicative updates drive unused activations towards zero, where subnormal floats are many times slower
on x86; flushing them to zero changes results by less than 1e-38.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def cpu_threads(threads: int, flush_denormal: bool = True) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads (and subnormals flushed to zero), then restore both."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    # set_flush_denormal returns False where the CPU cannot do it; then nothing changed and nothing is restored.
    flushed = flush_denormal and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)
        torch.set_num_threads(before)
