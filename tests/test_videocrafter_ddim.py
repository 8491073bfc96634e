"""VideoCrafter2's schedule and DDIM sampler against a plain transcription of the same equations."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_videocrafter")

from maestro_videocrafter.config import VC2_DIFFUSION  # noqa: E402
from maestro_videocrafter.ddim import DDIMSampler, NoiseSchedule, ddim_params, make_betas  # noqa: E402


def test_linear_schedule_is_linear_in_sqrt_beta():
    betas = make_betas(1000, 0.00085, 0.012).numpy()
    assert betas[0] == pytest.approx(0.00085) and betas[-1] == pytest.approx(0.012)
    assert np.allclose(np.diff(np.sqrt(betas)), (math.sqrt(0.012) - math.sqrt(0.00085)) / 999)
    # Not a plain linspace of betas: that would be another schedule ("sqrt_linear" in LDM's naming).
    assert not np.allclose(betas, np.linspace(0.00085, 0.012, 1000))


def test_use_scale_ramps_from_one_to_scale_b_over_400_steps():
    s = NoiseSchedule.from_config(VC2_DIFFUSION).scale_arr.numpy()
    assert s.shape == (1000,)
    assert s[0] == pytest.approx(1.0) and s[399] == pytest.approx(0.7) and np.allclose(s[400:], 0.7)
    assert np.allclose(s[:400], np.linspace(1.0, 0.7, 400))


def test_fifty_steps_visit_981_down_to_1():
    p = ddim_params(NoiseSchedule.from_config(VC2_DIFFUSION), 50, 1.0)
    assert p.timesteps[0] == 981 and p.timesteps[-1] == 1 and len(p.timesteps) == 50
    assert torch.all(p.timesteps[:-1] - p.timesteps[1:] == 20)


def reference_ddim(eps_fn, x_T, noises, steps, eta, use_scale=True):
    """The DDIM loop written out as VideoCrafter's DDIMSampler computes it (numpy schedule, one step at a time)."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas).astype(np.float32)  # registered as float32 buffers
    ddim_timesteps = np.asarray(list(range(0, 1000, 1000 // steps))) + 1
    a = alphas_cumprod[ddim_timesteps]
    a_prev = np.asarray([alphas_cumprod[0]] + alphas_cumprod[ddim_timesteps[:-1]].tolist())
    sigmas = eta * np.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    # The original's scale_arr: linspace(1, 0.7, 400) followed by 1000 entries of 0.7.
    scale_arr = np.concatenate([np.linspace(1.0, 0.7, 400), np.full(1000, 0.7)])
    scale = scale_arr[ddim_timesteps]
    scale_prev = np.asarray([scale_arr[0]] + scale_arr[ddim_timesteps[:-1]].tolist())
    x = x_T.double()
    trajectory = []
    total = len(ddim_timesteps)
    for i, step in enumerate(np.flip(ddim_timesteps)):
        index = total - i - 1
        e = eps_fn(x, int(step)).double()
        pred_x0 = (x - math.sqrt(1 - a[index]) * e) / math.sqrt(a[index])
        dir_xt = math.sqrt(1.0 - a_prev[index] - sigmas[index] ** 2) * e
        noise = sigmas[index] * noises[i].double()
        if use_scale:
            pred_x0 = pred_x0 / scale[index]
            x = math.sqrt(a_prev[index]) * scale_prev[index] * pred_x0 + dir_xt + noise
        else:
            x = math.sqrt(a_prev[index]) * pred_x0 + dir_xt + noise
        trajectory.append((int(step), x.clone()))
    return trajectory


def toy_eps(x, t):
    return 0.3 * x + 0.05 * math.sin(t / 97.0)


@pytest.mark.parametrize(("steps", "eta", "use_scale"), [(50, 1.0, True), (50, 0.0, True), (25, 0.5, False)])
def test_sampler_matches_reference_step_by_step(steps, eta, use_scale):
    schedule = NoiseSchedule.from_config({**VC2_DIFFUSION, "use_scale": use_scale})
    sampler = DDIMSampler(schedule, steps, eta)
    shape = (1, 4, 3, 5, 6)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    # The sampler draws one noise tensor per step (when sigma > 0) from the generator it is given.
    g = torch.Generator().manual_seed(7)
    noises = [torch.randn(shape, generator=g) if eta > 0 else torch.zeros(shape) for _ in range(steps)]
    expected = reference_ddim(toy_eps, x_T, noises, steps, eta, use_scale)

    seen = []

    def eps_fn(x, t, i):
        seen.append((int(t[0]), i, x.clone()))
        return toy_eps(x, int(t[0]))

    final = sampler.sample(eps_fn, x_T.clone(), torch.Generator().manual_seed(7))
    assert [s[0] for s in seen] == [e[0] for e in expected]
    assert [s[1] for s in seen] == list(range(steps))
    # The input of step i+1 is the output of step i.
    for i in range(steps - 1):
        assert torch.allclose(seen[i + 1][2].double(), expected[i][1], rtol=1e-5, atol=1e-5), f"step {i}"
    assert torch.allclose(final.double(), expected[-1][1], rtol=1e-5, atol=1e-5)


def test_sampling_is_reproducible_from_the_seed_only():
    sampler = DDIMSampler(NoiseSchedule.from_config(VC2_DIFFUSION), 10, 1.0)
    x_T = torch.randn(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(0))

    def run(seed):
        return sampler.sample(lambda x, t, i: toy_eps(x, int(t[0])), x_T, torch.Generator().manual_seed(seed))
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
