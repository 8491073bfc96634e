"""Attention Mosaic vs. plain cross-attention at VideoCrafter2's first-level shapes, side by side in one run.

16 frames, 40×64 latent (2560 queries), 5 heads × 64, 77 context rows, 10 tokens per source. Variants:
  plain            SDPA, no mask (what the layer does without a hook)
  mosaic K=2/K=4   the hook's mosaic phase: one SDPA call with the cached additive mask, still layouts
  mosaic K=4 moving  boxes that move every frame (a mask per frame)
  loop K=4         a per-region loop: gather each region's queries, SDPA over its rows, scatter back
  bool-mask K=4    the same mask given as bool (SDPA converts it on every call): why the hook caches a float mask
  guidance K=4     the layout-guidance phase (explicit logits, first steps only)
Repetitions are interleaved: every variant runs right beside a plain call, in alternating order, and each ratio is
the median over repetitions of those side-by-side ratios (robust to load on a shared machine).
Peak memory is what the call allocates beyond its inputs (CPU: the profiler's allocation events; CUDA: the allocator).
The last line pools the side-by-side ratios of the three mosaic variants (same kernel, same work) and gives their
median.

    python benchmarks/mosaic.py [--repeats 15] [--device cpu|cuda] [--dtype float32|float16|bfloat16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maestro.attention.hookpoint import AttentionSite  # noqa: E402
from maestro.attention.mosaic import AttentionMosaic  # noqa: E402
from maestro.condition.splice import token_groups  # noqa: E402
from maestro.types import Layout  # noqa: E402

FRAMES, HEIGHT, WIDTH, HEADS, HEAD_DIM, ROWS, TOKENS = 16, 40, 64, 5, 64, 77, 10


def still(boxes: list[tuple[float, float, float, float]]) -> Layout:
    return Layout(boxes=[[b] * FRAMES for b in boxes], labels=[f"s{i}" for i in range(len(boxes))])


HALVES = still([(0, 0, 0.5, 1), (0.5, 0, 1, 1)])
GRID = still([(0, 0, 0.5, 0.5), (0.5, 0, 1, 0.5), (0, 0.5, 0.5, 1), (0.5, 0.5, 1, 1)])
MOVING = Layout(
    boxes=[[(0.03 * f, 0.0, 0.03 * f + 0.5, 0.5) for f in range(FRAMES)],
           [(0.5 - 0.03 * f, 0.0, 1.0 - 0.03 * f, 0.5) for f in range(FRAMES)],
           [(0.0, 0.5, 0.5, 1.0)] * FRAMES,
           [(0.5, 0.5 - 0.01 * f, 1.0, 1.0 - 0.01 * f) for f in range(FRAMES)]],
    labels=["a", "b", "c", "d"],
)


def site(layout: Layout, step: int) -> AttentionSite:
    return AttentionSite("bench.attn2", HEIGHT, WIDTH, FRAMES, step, 50,
                         token_groups(layout.num_sources, TOKENS, ROWS), conditional=True)


def region_loop(layout: Layout) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-region loop a mosaic replaces (still layouts): K + 1 gathers, SDPA calls and scatters."""
    groups = token_groups(layout.num_sources, TOKENS, ROWS)
    owner = layout.at(HEIGHT, WIDTH, 0).reshape(-1)
    source = torch.zeros(ROWS, dtype=torch.bool)
    for g in groups:
        source[g] = True
    shared = (~source).nonzero().squeeze(1)
    plan = []
    for r in range(-1, layout.num_sources):
        rows = shared if r < 0 else torch.cat([shared, torch.arange(groups[r].start, groups[r].stop)]).sort().values
        positions = (owner == r).nonzero().squeeze(1)
        if len(positions):
            plan.append((positions, rows))

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(q)
        for positions, rows in plan:
            p, r = positions.to(q.device), rows.to(q.device)
            out[:, :, p] = F.scaled_dot_product_attention(q[:, :, p], k[:, :, r], v[:, :, r])
        return out

    return run


def peak_bytes(fn: Callable[[], torch.Tensor], device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        del out
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    # allocations count when they start, frees (reported on the op that ends up releasing) when that op ends
    events = [e for e in prof.events() if e.self_cpu_memory_usage != 0]
    events.sort(key=lambda e: e.time_range.start if e.self_cpu_memory_usage > 0 else e.time_range.end)
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    g = torch.Generator().manual_seed(0)
    q = torch.randn(FRAMES, HEADS, HEIGHT * WIDTH, HEAD_DIM, generator=g).to(device, dtype)
    k = torch.randn(FRAMES, HEADS, ROWS, HEAD_DIM, generator=g).to(device, dtype)
    v = torch.randn(FRAMES, HEADS, ROWS, HEAD_DIM, generator=g).to(device, dtype)

    hooks = {name: AttentionMosaic(layout, guidance_steps=1) for name, layout in
             [("K2", HALVES), ("K4", GRID), ("K4 moving", MOVING)]}
    loop = region_loop(GRID)
    s2, s4, s4m, s4_guided = site(HALVES, 1), site(GRID, 1), site(MOVING, 1), site(GRID, 0)
    bool_mask = hooks["K4"].masks(HEIGHT, WIDTH, FRAMES, s4.token_groups, ROWS, 1, device, dtype) == 0

    variants: dict[str, Callable[[], torch.Tensor]] = {
        "plain": lambda: F.scaled_dot_product_attention(q, k, v),
        "mosaic K=2": lambda: hooks["K2"](q, k, v, s2),
        "mosaic K=4": lambda: hooks["K4"](q, k, v, s4),
        "mosaic K=4 moving": lambda: hooks["K4 moving"](q, k, v, s4m),
        "loop K=4": lambda: loop(q, k, v),
        "bool-mask K=4": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bool_mask),
        "guidance K=4": lambda: hooks["K4"](q, k, v, s4_guided),
    }
    mosaic_names = ["mosaic K=2", "mosaic K=4", "mosaic K=4 moving"]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        # the mosaic is exact: the same numbers as the per-region loop
        torch.testing.assert_close(variants["mosaic K=4"](), variants["loop K=4"](), rtol=1e-4, atol=1e-4)
        for fn in variants.values():  # warm-up, and the masks get built (once per resolution)
            fn()
        # each variant is timed right beside a plain call (order alternating), so that load drifting on a shared
        # machine hits both sides of every ratio
        times: dict[str, list[float]] = {name: [] for name in variants}
        ratios: dict[str, list[float]] = {name: [] for name in variants if name != "plain"}

        def timed(name: str) -> float:
            sync()
            start = time.perf_counter()
            variants[name]()
            sync()
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            return elapsed

        for r in range(args.repeats):
            for i, name in enumerate(ratios):
                if (r + i) % 2:
                    mine, plain_time = timed(name), timed("plain")
                else:
                    plain_time, mine = timed("plain"), timed(name)
                ratios[name].append(mine / plain_time)
        peaks = {name: peak_bytes(fn, device) for name, fn in variants.items()}

    cache = sum(h.masks.nbytes() for h in hooks.values())
    print(f"device {device} ({torch.get_num_threads()} threads), {args.dtype}; q {tuple(q.shape)}, "
          f"k/v {tuple(k.shape)}; {args.repeats} interleaved repetitions")
    print(f"{'variant':<20}{'median ms':>10}{'min ms':>9}{'vs plain':>10}{'peak MiB':>10}")
    for name in variants:
        ratio = statistics.median(ratios[name]) if name in ratios else 1.0
        print(f"{name:<20}{statistics.median(times[name]) * 1e3:>10.1f}{min(times[name]) * 1e3:>9.1f}{ratio:>9.2f}×"
              f"{peaks[name] / 2**20:>10.1f}")
    print("(vs plain: median over repetitions of the time over the plain call beside it)")
    print(f"cached mosaic masks (all three layouts, made once per resolution): {cache / 2**20:.1f} MiB")
    pooled = [r for name in mosaic_names for r in ratios[name]]  # the three run the same kernel; pooling beats noise
    loop_vs_mosaic = statistics.median(a / b for a, b in zip(times["loop K=4"], times["mosaic K=4"]))
    print(f"loop K=4 / mosaic K=4 = {loop_vs_mosaic:.2f}; "
          f"worst single mosaic variant: {max(statistics.median(ratios[n]) for n in mosaic_names):.3f}")
    print(f"mosaic/plain = {statistics.median(pooled):.3f}")

if __name__ == "__main__":
    main()
