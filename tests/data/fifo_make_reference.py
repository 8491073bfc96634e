"""Writes tests/data/fifo_reference.pt: FIFO-Diffusion's own sampling loop run on Maestro's tiny VideoCrafter2 UNet.

Not a test and not run by the suite; kept so that the reference can be made again. It needs a checkout of
jjihwan/FIFO-Diffusion_public (commit b87ba5d1aec7e675c4fcadcc28e5cfeb47733451) and imports its code from there,
unchanged: `scripts/evaluation/funcs.py` `prepare_latents` and `fifo_ddim_sampling`, `lvdm/models/samplers/ddim.py`
`DDIMSampler` (`make_schedule`, `fifo_onestep`, `ddim_step`). Nothing of it is copied here. The adapter below is
ours:
- a stand-in for their LatentDiffusion `model`: the schedule buffers, `apply_model` → our UNet3D (random tiny
  weights, `torch.manual_seed(0)`, `maestro_videocrafter.testing.TINY_UNET`), the empty-prompt embedding, and a
  "decoder" that returns the latent (so the loop's output frames are latents);
- their `register_buffer` moves tensors to CUDA; it is replaced by a plain setattr (CPU);
- their noise (`torch.randn_like` in `shift_latents`, `noise_like` in `ddim_step`) is taken from one seeded CPU
  generator, in their call order, and zero (not drawn) for the lookahead context frames whose result they discard
  and for eta = 0, so that our sampler can draw the same numbers;
- the schedule is VideoCrafter2's without `use_scale` (their FIFO step has no scale; ours keeps VideoCrafter2's);
- the base video their `prepare_latents` noises into the first queue is a random latent (seed 1), not a generated one.

    python tests/data/fifo_make_reference.py /path/to/FIFO-Diffusion_public
"""

from __future__ import annotations

import sys
import types
from argparse import Namespace
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

FIFO_COMMIT = "b87ba5d1aec7e675c4fcadcc28e5cfeb47733451"
OUT = Path(__file__).with_name("fifo_reference.pt")
CASES = {  # name: (frames, partitions, lookahead, eta, cfg, new video length)
    "lookahead": (4, 2, True, 1.0, 2.0, 6),
    "partitions": (4, 3, False, 0.0, 2.0, 5),
}
LATENT = (4, 8, 8)  # channels, height, width: 64×64 frames
FPS = 8
NOISE_SEED = 3


def tiny_unet() -> torch.nn.Module:
    from maestro_videocrafter.testing import TINY_UNET
    from maestro_videocrafter.unet import UNet3D

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return UNet3D(**TINY_UNET).eval()


def schedule():
    from maestro_videocrafter.config import VC2_DIFFUSION
    from maestro_videocrafter.ddim import NoiseSchedule, make_betas

    diffusion = {**VC2_DIFFUSION, "use_scale": False}
    sched = NoiseSchedule.from_config(diffusion)
    betas = make_betas(1000, diffusion["linear_start"], diffusion["linear_end"]).float()
    return sched, betas


def contexts(context_dim: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(1, 77, context_dim, generator=g), torch.randn(1, 77, context_dim, generator=g)


class TheirModel:
    """What their sampler reads from VideoCrafter's LatentDiffusion, backed by our UNet."""

    def __init__(self, unet, sched, betas, uncond):
        self.unet, self.uncond = unet, uncond
        self.num_timesteps = sched.num_timesteps
        self.betas = betas
        self.alphas_cumprod = sched.alphas_cumprod
        self.alphas_cumprod_prev = torch.cat([torch.ones(1), sched.alphas_cumprod[:-1]])
        self.use_scale = False
        self.device = torch.device("cpu")
        self.channels = LATENT[0]

    def apply_model(self, x, t, cond, **_):
        return self.unet(x, t, cond["c_crossattn"][0], cond["fps"])

    def get_learned_conditioning(self, prompts):
        assert prompts == [""]
        return self.uncond

    def decode_first_stage_2DAE(self, z):
        return z.clone()


def run_case(fifo_root: Path, frames, partitions, lookahead, eta, cfg, new_length):
    from lvdm.models.samplers import ddim as their_ddim
    from scripts.evaluation import funcs

    unet = tiny_unet()
    sched, betas = schedule()
    context, uncond = contexts()
    model = TheirModel(unet, sched, betas, uncond)
    steps = frames * partitions
    sampler = their_ddim.DDIMSampler(model)
    sampler.make_schedule(ddim_num_steps=steps, ddim_eta=eta, verbose=False)
    args = Namespace(video_length=frames, num_partitions=partitions, num_inference_steps=steps,
                     new_video_length=new_length, lookahead_denoising=lookahead, save_frames=False)
    g = torch.Generator().manual_seed(1)
    base = torch.randn(1, LATENT[0], frames, *LATENT[1:], generator=g)
    with TemporaryDirectory() as tmp:
        torch.save(base, f"{tmp}/{steps}.pt")
        torch.manual_seed(1)
        initial = funcs.prepare_latents(args, tmp, sampler)  # their queue: the base video noised diagonally

    stream = torch.Generator().manual_seed(NOISE_SEED)
    calls = {"n": 0}
    context_frames = frames // 2 if lookahead else 0

    def noise_like(shape, device, repeat=False):
        position = calls["n"] % frames
        calls["n"] += 1
        if eta == 0 or position < context_frames:
            return torch.zeros(shape)
        return torch.randn(shape, generator=stream)

    saved = (torch.randn_like, their_ddim.noise_like, funcs.prepare_latents, funcs.tensor2image)
    their_ddim.noise_like = noise_like
    funcs.prepare_latents = lambda *a, **k: initial.clone()
    funcs.tensor2image = lambda t: t[:, :, 0].clone()  # [1, c, h, w]: the frame that leaves the queue
    torch.randn_like = lambda t, **k: torch.randn(t.shape, generator=stream)
    try:
        cond = {"c_crossattn": [context], "fps": torch.tensor([FPS])}
        with torch.no_grad():
            out = funcs.fifo_ddim_sampling(args, model, cond, [1, LATENT[0], frames, *LATENT[1:]], sampler, cfg,
                                           output_dir=None, latents_dir=None, save_frames=False)
    finally:
        torch.randn_like, their_ddim.noise_like, funcs.prepare_latents, funcs.tensor2image = saved
    return {"initial": initial, "outputs": torch.stack(out), "timesteps": torch.as_tensor(sampler.ddim_timesteps)}


def main(fifo_root: str) -> None:
    torch.set_num_threads(1)  # the tiny UNet is fastest on one thread
    root = Path(fifo_root).resolve()
    sys.path.insert(0, str(root))
    for name in ("decord", "imageio"):  # imported by funcs.py for video I/O it does not use here
        stub = types.ModuleType(name)
        stub.VideoReader, stub.cpu = object, lambda *a: None
        sys.modules.setdefault(name, stub)
    from lvdm.models.samplers import ddim as their_ddim

    their_ddim.DDIMSampler.register_buffer = lambda self, name, attr: setattr(self, name, attr)
    context, uncond = contexts()
    data = {"fifo_commit": FIFO_COMMIT, "torch": str(torch.__version__), "how": __doc__, "context": context,
            "uncond": uncond, "fps": FPS, "noise_seed": NOISE_SEED}
    for name, case in CASES.items():
        data[name] = run_case(root, *case)
        data[name]["case"] = list(case)
    torch.save(data, OUT)
    print(f"wrote {OUT}", {k: tuple(v["outputs"].shape) for k, v in data.items() if isinstance(v, dict)})


if __name__ == "__main__":
    main(sys.argv[1])
