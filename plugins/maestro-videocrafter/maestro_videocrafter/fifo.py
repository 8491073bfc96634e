"""FIFO-Diffusion's diagonal denoising (Kim et al., NeurIPS 2024; read from jjihwan/FIFO-Diffusion_public,
`scripts/evaluation/funcs.py` `fifo_ddim_sampling` and `lvdm/models/samplers/ddim.py` `fifo_onestep`).

A queue holds frames at increasing noise levels: level 0 (the front, the earliest frame) is one DDIM step from clean,
level S − 1 (the back) is pure noise, S = partitions × frames. Every iteration denoises each frame by one step, at
its own level; the front frame leaves clean, everything moves one level forward, and a fresh noise frame enters at
the back. So each frame gets S steps, and its neighbours in time are always a step ahead or behind: no cuts.

- Latent partitioning: the S levels are cut into `partitions` windows of `frames` frames; the UNet sees one window
  at a time (memory of one window), each frame with its own timestep.
- Lookahead denoising: windows of `frames` start every ⌈frames/2⌉ levels and update only their back part; the front
  ⌊frames/2⌋ frames are context, a step or more ahead (the first window's context is the frames that just left the
  queue, at the cleanest level). Every frame is evaluated about twice per step.

Where this differs from the public code:
- The queue starts empty and fills (frame k enters at iteration k); windows hold only the frames in flight, so the
  first and last frames of a video meet shorter windows. The original first generates a base video, noises it into a
  full queue and throws away the first S − frames outputs: about twice the cost for a 64-frame video.
- The step divides the predicted x₀ by the `use_scale` factor and multiplies by the next one, as VideoCrafter2's own
  DDIM does (`maestro_videocrafter.ddim`); the public FIFO step skips that scale. Without `use_scale` they agree.
- With `lookahead`, frames that the public code evaluates only as context draw no step noise here; with eta = 0 no
  step draws noise (the public code draws it and multiplies it by 0).

The S levels are FIFO's DDIM timesteps: round(linspace(0, T − 1, S)) of the T training timesteps, so the queue spans
the whole schedule (VideoCrafter2's own DDIM, used by `long=windows`, takes 1, 1 + T/S, 1 + 2T/S, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from maestro_videocrafter.ddim import NoiseSchedule, ddim_step, params_for_timesteps


@dataclass(frozen=True)
class FifoPlan:
    """The queue's shape: `partitions` × `frames` noise levels, with or without lookahead."""

    frames: int
    partitions: int
    lookahead: bool = True

    @property
    def levels(self) -> int:
        return self.frames * self.partitions

    @property
    def context(self) -> int:
        """Frames at the front of a lookahead window that are read but not updated."""
        return self.frames // 2 if self.lookahead else 0

    def windows(self) -> list[tuple[int, int, int]]:
        """(first level read, first level updated, end level) of every window, front to back."""
        stride = self.frames - self.context
        out = []
        for start in range(0, self.levels, stride):
            out.append((start - self.context, start, min(start + stride, self.levels)))
        return out


def fifo_timesteps(num_timesteps: int, levels: int) -> torch.Tensor:
    """FIFO's uniform DDIM timesteps, ascending: `levels` of them from 0 to num_timesteps − 1 (long)."""
    return torch.linspace(0, num_timesteps - 1, levels, dtype=torch.float64).round().long()


@dataclass
class QueuedFrame:
    index: int  # in the whole video
    level: int  # 0 = one step from clean, levels − 1 = pure noise; < 0: left the queue, kept as lookahead context
    latent: torch.Tensor  # [1, channels, 1, height, width]


# eps for the latents `[1, c, len(frames), h, w]` of one window, each frame at its own level.
Denoise = Callable[[torch.Tensor, Sequence[QueuedFrame]], torch.Tensor]


class FifoSampler:
    """Runs the queue; all noise comes from `generator` (CPU), in a fixed order, so runs reproduce from a seed."""

    def __init__(self, schedule: NoiseSchedule, plan: FifoPlan, eta: float = 1.0) -> None:
        self.plan = plan
        self.eta = eta
        self.params = params_for_timesteps(schedule, fifo_timesteps(schedule.num_timesteps, plan.levels), eta)
        self._last = plan.levels - 1  # sampling index of level 0 (the lowest timestep)

    def sampling_index(self, level: int) -> int:
        return self._last - max(level, 0)

    def timestep(self, level: int) -> int:
        return int(self.params.timesteps[self.sampling_index(level)])

    def step_of(self, level: int) -> int:
        """The frame's denoising step, 0-based: 0 at the back of the queue, levels − 1 at the front (and after)."""
        return self.plan.levels - 1 - max(level, 0)

    def iterations(self, num_frames: int) -> int:
        """Iterations from an empty queue to the last frame out."""
        return num_frames + self.plan.levels - 1

    def run(self, denoise: Denoise, num_frames: int, latent_shape: tuple[int, int, int],
            generator: torch.Generator | None, device: torch.device | str = "cpu",
            queue: Sequence[QueuedFrame] = (), advance: Callable[[], None] | None = None
            ) -> Iterator[QueuedFrame]:
        """Yield frames `0 … num_frames − 1` as they leave the queue, clean (`latent_shape` = channels, h, w).

        `queue` may start the run from frames already in flight (sorted by level; what the public code starts from);
        new frames then take the indices after the highest one there.
        """
        queue = list(queue)
        top = self.plan.levels - 1
        next_index = max((f.index for f in queue), default=-1) + 1
        c, h, w = latent_shape
        while True:
            if next_index < num_frames and not any(f.level == top for f in queue):
                noise = torch.randn((1, c, 1, h, w), generator=generator, dtype=torch.float32).to(device)
                queue.append(QueuedFrame(next_index, top, noise))
                next_index += 1
            if not any(f.level >= 0 for f in queue):
                return
            stepped = self._step(denoise, queue, generator, device)
            for frame, latent in stepped:
                frame.latent = latent
            for frame in queue:
                frame.level -= 1
            out = [f for f in queue if f.level == -1]
            queue = [f for f in queue if f.level >= -self.plan.context]
            if advance is not None:
                advance()
            if out:
                yield out[0]

    def _step(self, denoise: Denoise, queue: list[QueuedFrame], generator: torch.Generator | None,
              device: torch.device | str) -> list[tuple[QueuedFrame, torch.Tensor]]:
        """One DDIM step for every frame in flight, window by window from the back (each reads the old latents)."""
        stepped = []
        for first, update, end in reversed(self.plan.windows()):
            members = [f for f in queue if first <= f.level < end]
            if not any(f.level >= update for f in members):
                continue
            eps = denoise(torch.cat([f.latent for f in members], dim=2), members)
            for pos, frame in enumerate(members):
                if frame.level < update:
                    continue
                i = self.sampling_index(frame.level)
                noise = None
                if self.eta > 0:  # drawn at every stepped frame, even where σ is 0: one fixed noise order
                    noise = torch.randn(frame.latent.shape, generator=generator, dtype=torch.float32)
                    noise = noise.to(device, frame.latent.dtype)
                x_prev, _ = ddim_step(frame.latent, eps[:, :, pos:pos + 1].to(frame.latent.dtype), self.params, i,
                                      noise)
                stepped.append((frame, x_prev))
        return stepped

