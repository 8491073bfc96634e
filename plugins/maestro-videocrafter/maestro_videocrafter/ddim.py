"""VideoCrafter2's noise schedule and DDIM sampler (`lvdm/models/ddpm3d.py`, `lvdm/models/samplers/ddim.py`).

- Betas: VideoCrafter's "linear" schedule is LDM's, linear in √β:
  β_t = (√0.00085 + t/(T-1)·(√0.012 − √0.00085))².
- `use_scale`: the signal is scaled by s_t during training, s linear from scale_a = 1 down to scale_b = 0.7 over the
  first 400 timesteps, then constant (`scale_arr`; the original appends 1000 more entries of scale_b — its
  "fix_scale_bug" off — which no timestep below 1000 reaches). DDIM divides the predicted x₀ by s_t and multiplies
  by s_prev when stepping.
- DDIM ("uniform"): timesteps 1, 1+c, 1+2c, ... with c = T // steps; ᾱ_prev of the first is ᾱ_0;
  σ = η √((1−ᾱ_prev)/(1−ᾱ) · (1−ᾱ/ᾱ_prev));
  x₀ = (x − √(1−ᾱ) ε)/√ᾱ;  x_prev = √ᾱ_prev · s_prev · x₀/s + √(1−ᾱ_prev−σ²) ε + σ z.
As in the original, the schedule is built in float64, stored as float32, and the DDIM coefficients are computed from
those float32 values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def make_betas(timesteps: int = 1000, linear_start: float = 0.00085, linear_end: float = 0.012) -> torch.Tensor:
    """LDM's "linear" (sqrt-linear) betas in float64."""
    return torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2


def make_scale_arr(timesteps: int = 1000, scale_a: float = 1.0, scale_b: float = 0.7,
                   mid_step: int = 400) -> torch.Tensor:
    """The `use_scale` factors s_t for t in [0, timesteps), float64."""
    ramp = torch.linspace(scale_a, scale_b, mid_step, dtype=torch.float64)
    rest = torch.full((max(0, timesteps - mid_step),), scale_b, dtype=torch.float64)
    return torch.cat([ramp, rest])[:timesteps]


@dataclass(frozen=True)
class NoiseSchedule:
    """ᾱ_t (float32, as registered by the original) and the optional signal scale s_t."""

    alphas_cumprod: torch.Tensor
    scale_arr: torch.Tensor | None

    @classmethod
    def from_config(cls, diffusion: dict) -> "NoiseSchedule":
        n = int(diffusion.get("timesteps", 1000))
        betas = make_betas(n, float(diffusion["linear_start"]), float(diffusion["linear_end"]))
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
        scale = None
        if diffusion.get("use_scale", False):
            scale = make_scale_arr(n, float(diffusion.get("scale_a", 1.0)), float(diffusion["scale_b"]),
                                   int(diffusion.get("mid_step", 400))).to(torch.float32)
        return cls(alphas_cumprod, scale)

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])


@dataclass(frozen=True)
class DDIMStepParams:
    """Per DDIM step i (in sampling order, i = 0 is the noisiest): the timestep and the coefficients it uses."""

    timesteps: torch.Tensor  # long [steps], descending
    alphas: torch.Tensor  # ᾱ_t
    alphas_prev: torch.Tensor  # ᾱ of the next (less noisy) step
    sigmas: torch.Tensor
    scales: torch.Tensor  # s_t (ones without use_scale)
    scales_prev: torch.Tensor


def ddim_params(schedule: NoiseSchedule, steps: int, eta: float) -> DDIMStepParams:
    n = schedule.num_timesteps
    if not 1 <= steps <= n:
        raise ValueError(f"DDIM steps must be between 1 and {n}, not {steps}")
    c = n // steps
    ts = torch.arange(0, n, c, dtype=torch.long) + 1  # ascending, as the original builds them
    ts = ts[ts < n]  # the original would index past the end for steps that do not divide n; stay inside
    return params_for_timesteps(schedule, ts, eta)


def params_for_timesteps(schedule: NoiseSchedule, ts: torch.Tensor, eta: float) -> DDIMStepParams:
    """DDIM coefficients for the ascending timesteps `ts` (ᾱ_prev of the first is ᾱ_0), in sampling order."""
    ac = schedule.alphas_cumprod
    alphas = ac[ts]
    alphas_prev = torch.cat([ac[:1], ac[ts[:-1]]])
    sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    if schedule.scale_arr is not None:
        scales = schedule.scale_arr[ts]
        scales_prev = torch.cat([schedule.scale_arr[:1], schedule.scale_arr[ts[:-1]]])
    else:
        scales = scales_prev = torch.ones_like(alphas)
    flip = lambda t: t.flip(0)  # noqa: E731 - sampling goes from the noisiest timestep down
    return DDIMStepParams(flip(ts), flip(alphas), flip(alphas_prev), flip(sigmas), flip(scales), flip(scales_prev))


def ddim_step(x: torch.Tensor, eps: torch.Tensor, params: DDIMStepParams, i: int,
              noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update at sampling step i: (x_prev, predicted x₀). `noise` may be None when σ is 0."""
    a_t, a_prev, sigma = params.alphas[i].item(), params.alphas_prev[i].item(), params.sigmas[i].item()
    s_t, s_prev = params.scales[i].item(), params.scales_prev[i].item()
    pred_x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t**0.5
    dir_xt = max(1.0 - a_prev - sigma**2, 0.0) ** 0.5 * eps
    x_prev = a_prev**0.5 * s_prev * (pred_x0 / s_t) + dir_xt
    if sigma > 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise for every step")
        x_prev = x_prev + sigma * noise
    return x_prev, pred_x0


# eps = model(x, t_batch, step_index, conditional) is the caller's business (CFG, hooks); the sampler only steps.
EpsFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


class DDIMSampler:
    """Runs the DDIM loop from x_T; all noise comes from `generator` (CPU) so runs reproduce on any device."""

    def __init__(self, schedule: NoiseSchedule, steps: int = 50, eta: float = 1.0) -> None:
        self.schedule = schedule
        self.steps = steps
        self.eta = eta
        self.params = ddim_params(schedule, steps, eta)

    @property
    def num_steps(self) -> int:
        return int(self.params.timesteps.shape[0])

    def sample(self, eps_fn: EpsFn, x_T: torch.Tensor, generator: torch.Generator | None,
               advance: Callable[[], None] | None = None) -> torch.Tensor:
        x = x_T
        for i in range(self.num_steps):
            t = torch.full((x.shape[0],), int(self.params.timesteps[i]), dtype=torch.long, device=x.device)
            eps = eps_fn(x, t, i).to(x.dtype)
            noise = None
            if self.params.sigmas[i] > 0:
                noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
            x, _ = ddim_step(x, eps, self.params, i, noise)
            if advance is not None:
                advance()
        return x
