"""Long videos: cost per output frame of FIFO denoising (without and with lookahead) against independent windows.

The three denoising loops of the `videocrafter2` backbone run side by side on one UNet, at the same number of DDIM
steps S = partitions × frames (a divisor of 1000, so that VideoCrafter2's DDIM for the windows also makes exactly S):

- `windows`: ⌈video / frames⌉ independent windows of `frames`, S steps each (`long=windows`);
- `fifo`: one queue of S levels in `partitions` windows (`long=fifo lookahead=false`);
- `fifo+lookahead`: the same with lookahead denoising (`long=fifo`, the default).

One guidance pass (cfg 1): classifier-free guidance doubles every variant alike. The VAE, the CIM and the hook are
left out (the same per frame in all three). Each repeat runs the three in turn (windows, fifo, fifo+lookahead, then
again), so that load from other processes falls on all alike; a ratio is the median of the per-repeat ratios. Also
printed: the frames the UNet evaluated and the UNet calls made (counted, not timed) per output frame. FIFO evaluates
each frame once per step (twice with lookahead), as the windows do, but in more, partly filled windows while its queue
fills and drains: where a forward costs about the same whatever its frame count (a small latent on a CPU: the
weights' memory traffic dominates), the calls decide; where it costs per frame (a real latent), the frames do.

Models: `tiny` (the tests' tiny UNet) and `full` (VideoCrafter2's UNet at its full width, 320 channels and 1024-wide
context, random weights, on a small latent so that a 2-core CPU gets through it).

First, the paper's own setting counted (frames and calls, no timing: a full-size 64-frame run does not fit a 2-core CPU).

    .venv/bin/python benchmarks/fifo.py [--model tiny|full|both] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

VARIANTS = ("windows", "fifo", "fifo+lookahead")
# model: (UNet config name, frames, partitions, video frames, latent height, latent width)
SETUPS = {
    "tiny": ("tiny", 4, 2, 16, 8, 8),
    "full": ("full", 4, 1, 8, 8, 8),
}


def build_unet(name: str):
    import torch

    from maestro_videocrafter.config import VC2_UNET
    from maestro_videocrafter.testing import TINY_UNET
    from maestro_videocrafter.unet import UNet3D

    config = TINY_UNET if name == "tiny" else VC2_UNET
    with torch.device("meta"):
        unet = UNet3D(**config)
    unet = unet.to_empty(device="cpu").eval().requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in unet.parameters():  # small random weights: fast to make, and activations stay finite
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 / math.sqrt(max(1, p[0].numel()))))
    return unet, int(config["context_dim"])


def run_variant(variant: str, unet, schedule, frames: int, partitions: int, video: int,
                latent: tuple[int, int, int], contexts, counter: dict[str, int], check_steps: bool = True):
    import torch

    from maestro_videocrafter.ddim import DDIMSampler
    from maestro_videocrafter.fifo import FifoPlan, FifoSampler

    generator = torch.Generator().manual_seed(0)
    steps = frames * partitions
    if variant == "windows":
        sampler = DDIMSampler(schedule, steps, 1.0)
        assert sampler.num_steps == steps or not check_steps
        out = []
        for start in range(0, video, frames):
            window = contexts[start:start + frames]
            window = torch.cat([window, window[-1:].expand(frames - window.shape[0], -1, -1)])

            def eps(x, t, i, window=window):
                counter["frames"] += x.shape[2]
                counter["calls"] += 1
                return unet(x, t, window, 8)

            x_T = torch.randn((1, latent[0], frames, *latent[1:]), generator=generator)
            out.append(sampler.sample(eps, x_T, generator))
        return torch.cat(out, dim=2)[:, :, :video]
    plan = FifoPlan(frames, partitions, lookahead=variant == "fifo+lookahead")
    sampler = FifoSampler(schedule, plan, 1.0)

    def denoise(x, members):
        counter["frames"] += x.shape[2]
        counter["calls"] += 1
        t = torch.tensor([sampler.timestep(f.level) for f in members])
        return unet(x, t, contexts[[max(f.index, 0) for f in members]], 8)

    return torch.cat([f.latent for f in sampler.run(denoise, video, latent, generator)], dim=2)


def bench(model: str, repeats: int) -> None:
    import torch

    from maestro_videocrafter.config import VC2_DIFFUSION
    from maestro_videocrafter.ddim import NoiseSchedule

    name, frames, partitions, video, h, w = SETUPS[model]
    unet, context_dim = build_unet(name)
    schedule = NoiseSchedule.from_config(VC2_DIFFUSION)
    contexts = torch.randn(video, 77, context_dim, generator=torch.Generator().manual_seed(1))
    latent = (4, h, w)
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"\n[{model}] UNet3D {params:.0f} M parameters; {video} frames of latent {h}x{w}; frames={frames}, "
          f"partitions={partitions}, {frames * partitions} DDIM steps; CPU, {torch.get_num_threads()} threads, "
          f"float32, cfg 1")
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    evaluated: dict[str, int] = {}
    calls: dict[str, int] = {}
    with torch.inference_mode():
        for _ in range(max(1, repeats)):
            for variant in VARIANTS:
                counter = {"frames": 0, "calls": 0}
                start = time.perf_counter()
                out = run_variant(variant, unet, schedule, frames, partitions, video, latent, contexts, counter)
                times[variant].append(time.perf_counter() - start)
                evaluated[variant] = counter["frames"]
                calls[variant] = counter["calls"]
                assert out.shape[2] == video and torch.isfinite(out).all(), variant
    print(f"{'variant':<16}{'median s/frame':>15}{'frames evaluated/frame':>24}{'UNet calls/frame':>18}"
          f"{'time vs windows':>17}")
    for variant in VARIANTS:
        median = statistics.median(times[variant]) / video
        ratio = statistics.median(a / b for a, b in zip(times[variant], times["windows"]))
        print(f"{variant:<16}{median:>15.4f}{evaluated[variant] / video:>24.2f}{calls[variant] / video:>18.2f}"
              f"{ratio:>16.2f}x")


def count_paper_setting() -> None:
    """The paper's setting (64 frames, 16 per window, 4 partitions, 64 steps): the work counted, not timed."""
    import torch

    from maestro_videocrafter.config import VC2_DIFFUSION
    from maestro_videocrafter.ddim import NoiseSchedule

    frames, partitions, video = 16, 4, 64
    schedule = NoiseSchedule.from_config(VC2_DIFFUSION)
    contexts = torch.zeros(video, 1, 1)
    zero_unet = lambda x, t, context, fps: torch.zeros_like(x)  # noqa: E731 - counting only
    print(f"\n[counted] the paper's setting: {video} frames, frames={frames}, partitions={partitions}, "
          f"{frames * partitions} DDIM steps (64 steps also for the windows, whose DDIM makes 67 here)")
    print(f"{'variant':<16}{'frames evaluated/frame':>24}{'UNet calls/frame':>18}{'frames vs windows':>19}"
          f"{'calls vs windows':>18}")
    counts = {}
    for variant in VARIANTS:
        counter = {"frames": 0, "calls": 0}
        with torch.inference_mode():
            run_variant(variant, zero_unet, schedule, frames, partitions, video, (1, 1, 1), contexts, counter,
                        check_steps=False)
        counts[variant] = counter
        base = counts["windows"]
        print(f"{variant:<16}{counter['frames'] / video:>24.2f}{counter['calls'] / video:>18.2f}"
              f"{counter['frames'] / base['frames']:>18.2f}x{counter['calls'] / base['calls']:>17.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "full", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of the three variants")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a busy 2-core machine more threads only contend)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    count_paper_setting()
    for model in (("tiny", "full") if args.model == "both" else (args.model,)):
        bench(model, args.repeats)


if __name__ == "__main__":
    main()
