"""VideoCrafter2 UNet forward: our fused attention (SDPA) vs. plain attention (softmax(QKᵀ)V materialised).

The architecture is VC2's (channel_mult 1-2-4-4, attention at every level, temporal convs and transformers,
init_attn, fps embedding, 1024-wide text context) at a reduced width and frame count, but at the real latent size of
a 320x512 video (40x64). Heads are 16 wide so that the reduced model keeps nearly VC2's head counts (4-8-16-16
against 5-10-20-20): attention's memory grows with heads × frames × (h·w)², not with the head width. Both variants
run on the same model in one process, switching `set_attention_impl`:

- memory, from each variant's first forward (which also warms caches up for the timing): the peak of the bytes held
  by live tensors, from the torch profiler's allocator events (`profile_memory=True`: every CPU allocation and free,
  in order). Unlike the process's RSS, it is exact and blind to other processes and to malloc's caching;
- time: median over `--repeats` forwards per variant, the variants interleaved so that load from other processes
  falls on both alike.

    .venv/bin/python benchmarks/unet.py [--channels 64] [--head-channels 16] [--frames 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

IMPLS = {"sdpa": "ours: SDPA (fused)", "math": "plain softmax(QK^T)V"}


def peak_tensor_bytes(fn) -> int:
    """Peak of live tensor bytes (above those alive at the start) while `fn()` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=64, help="model_channels (VC2: 320)")
    parser.add_argument("--head-channels", type=int, default=16, help="num_head_channels (VC2: 64)")
    parser.add_argument("--frames", type=int, default=4, help="frames (VC2: 16)")
    parser.add_argument("--height", type=int, default=40, help="latent height (320 px / 8)")
    parser.add_argument("--width", type=int, default=64, help="latent width (512 px / 8)")
    parser.add_argument("--repeats", type=int, default=2, help="timed forwards per variant")
    args = parser.parse_args()

    import torch

    from maestro_videocrafter import UNet3D
    from maestro_videocrafter.attention import set_attention_impl
    from maestro_videocrafter.config import VC2_UNET

    torch.manual_seed(0)
    config = {**VC2_UNET, "model_channels": args.channels, "num_head_channels": args.head_channels,
              "temporal_length": args.frames}
    unet = UNet3D(**config).eval().requires_grad_(False)
    x = torch.randn(1, 4, args.frames, args.height, args.width)
    t = torch.tensor([500])
    context = torch.randn(1, 77, config["context_dim"])
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"UNet3D, VC2 layout at model_channels={args.channels}, num_head_channels={args.head_channels} "
          f"({params:.1f} M parameters): forward on "
          f"x[1, 4, {args.frames}, {args.height}, {args.width}], context [1, 77, 1024], CPU, "
          f"{torch.get_num_threads()} threads, float32")

    def forward(impl: str) -> torch.Tensor:
        set_attention_impl(unet, impl)
        return unet(x, t, context, 8)

    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    peaks: dict[str, int] = {}
    outputs = {}
    with torch.inference_mode():
        for impl in IMPLS:
            peaks[impl] = peak_tensor_bytes(lambda impl=impl: outputs.__setitem__(impl, forward(impl)))
        for _ in range(max(1, args.repeats)):
            for impl in IMPLS:
                start = time.perf_counter()
                forward(impl)
                times[impl].append(time.perf_counter() - start)
    agree = (outputs["sdpa"] - outputs["math"]).abs().max().item()

    print(f"{'attention':<24}{'median time (s)':>17}{'peak tensor memory (MB)':>26}")
    median = {impl: sorted(ts)[len(ts) // 2] for impl, ts in times.items()}
    for impl, name in IMPLS.items():
        print(f"{name:<24}{median[impl]:>17.2f}{peaks[impl] / 1e6:>26.0f}")
    print(f"ratios plain/ours: time {median['math'] / median['sdpa']:.2f}x, "
          f"peak memory {peaks['math'] / peaks['sdpa']:.2f}x   (outputs agree to {agree:.1e})")


if __name__ == "__main__":
    main()
