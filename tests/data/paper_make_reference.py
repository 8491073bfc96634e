"""Writes tests/data/paper_reference.pt: the paper's released code (kuai-lab/eaai25_complex_A2V) run end to end on
the tiny random model of `maestro_videocrafter.testing` (`seeded_state_dicts(SEED)`), on the CPU.

Not a test and not run by the suite; kept so that the reference can be made again, from a checkout of
kuai-lab/eaai25_complex_A2V at PAPER_COMMIT:

    PYTHONPATH=.:plugins/maestro-videocrafter python tests/data/paper_make_reference.py /path/to/eaai25_complex_A2V

Imported from the checkout UNCHANGED (nothing of it is copied here): `lvdm/modules/networks/openaimodel3d.py`
UNetModel (with `lvdm/modules/attention.py` and `TrailBlazer/`), `lvdm/models/samplers/ddim.py` DDIMSampler,
`lvdm/models/ddpm3d.py` (DDPM.register_schedule, LatentDiffusion.apply_model and decode_first_stage_2DAE, called on
our stand-in, DiffusionWrapper), `lvdm/models/autoencoder.py` AutoencoderKL (the decoder),
`scripts/evaluation/audio_resampler.py` AudioResampler (the CIM), `TrailBlazer/Utils.py` keyframed_bbox with
`TrailBlazer/MultiSubjects.yaml` (the bundle of `scripts/run.sh`). The adapter below is ours:
- `xformers.ops.memory_efficient_attention` is stubbed by plain softmax(q kᵀ/√d) v on [B, N, D] (no xformers on
  CPU); `PYTHONBREAKPOINT=0` silences the `breakpoint()` calls left in attention.py;
- the DDIM sampler's `register_buffer` moves tensors to CUDA; a subclass replaces it by a plain setattr (CPU);
- the one fix: the sampler's mosaic call (steps ≥ step_ctrl) does not pass `pos` (as released it crashes there);
  our stand-in's `apply_model` adds `pos` to that call;
- `scripts/evaluation/inference_2object.py` run_inference needs CUDA, ImageBind and the real weights: its splice and
  frame→clip lines are re-enacted in `their_context` (ImageBind's tokens are random [clips, 229, 32] per source), and
  `scripts/evaluation/funcs.py` batch_ddim_sampling (which imports decord and cv2) in `their_sample`; its uint8
  conversion is save_videos' (clamp, (x + 1) / 2, × 255, truncate);
- the schedule: DDPM.register_schedule on the stand-in, and LatentDiffusion.__init__'s `use_scale` lines re-enacted
  (its fix_scale_bug off, as VideoCrafter2's config);
- the empty prompt is embedded by Maestro's OpenCLIP text encoder on the tiny weights (their FrozenOpenCLIPEmbedder
  downloads OpenCLIP's); the run is float32 on the CPU (theirs is fp16 autocast on CUDA);
- the noise (their `torch.randn` for x_T, then `noise_like` per step) comes from the global generator seeded with
  NOISE_SEED right before sampling: the same numbers as Maestro's `RunContext(seed=NOISE_SEED).generator()`.

The model (`maestro_videocrafter.testing.PAPER_UNET`): two levels, latent 10×16 and 5×8 (80×128 pixels, the
released code's 5:8 grid), heads of 64 (its LR split hard-codes 64), 1 and 2 heads, no init_attn; a CIM of 10 queries
(its rows 1..10 and 11..20 are hard-coded). 12 frames (16 would be the paper's; 12 keeps the test fast and still
meets both the `try` and its `except`), CFG 12, eta 1, fps 8.

Cases: `plain` (no TrailBlazer bundle and step_ctrl = steps: the released code's plain attention everywhere, i.e.
DDIM, CFG, fps conditioning and decoding alone), `LR` and `TD` (step_ctrl 2 of 4 steps: TrailBlazer, then the
mosaic). Plus `mapping`: the per-frame context alone for several frame and clip counts (the `try` and its
`except`).
"""

from __future__ import annotations

import os
import sys
import types
from argparse import Namespace
from pathlib import Path

import torch

PAPER_COMMIT = "5572c2b88b3cc9a1bae64785e2e3a4882e869e38"
OUT = Path(__file__).with_name("paper_reference.pt")
SEED = 0  # the tiny model's weights (maestro_videocrafter.testing.seeded_state_dicts)
TOKEN_SEED = 1
NOISE_SEED = 5
STEPS, STEP_CTRL, CFG, ETA, FPS, FRAMES = 4, 2, 12.0, 1.0, 8, 12
CLIPS = (2, 1)  # source 1 meets the `try` (clip i → frames 8i..8i+7), source 2 its `except` (frames 8.. empty)
CASES = {"plain": (None, STEPS), "LR": ("LR", STEP_CTRL), "TD": ("TD", STEP_CTRL)}  # name: (pos, step_ctrl)
MAPPING = [(16, (2, 1)), (20, (3, 2)), (5, (1, 1))]  # (frames, clips per source)


def stub_xformers() -> None:
    def memory_efficient_attention(q, k, v, attn_bias=None, op=None):
        return torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1) @ v

    xformers = types.ModuleType("xformers")
    xformers.ops = types.ModuleType("xformers.ops")
    xformers.ops.memory_efficient_attention = memory_efficient_attention
    sys.modules.update({"xformers": xformers, "xformers.ops": xformers.ops})


def tokens(clips: tuple[int, ...]) -> list[torch.Tensor]:
    from maestro_videocrafter.testing import PAPER_TOKEN_DIM

    g = torch.Generator().manual_seed(TOKEN_SEED)
    return [torch.randn(n, 229, PAPER_TOKEN_DIM, generator=g) for n in clips]


def empty_prompt(states) -> torch.Tensor:
    from maestro_videocrafter.testing import paper_config
    from maestro_videocrafter.text import OpenCLIPTextEncoder

    text = OpenCLIPTextEncoder(**paper_config()["text_config"]).eval()
    text.load_state_dict(states["text"], strict=True)
    with torch.no_grad():
        return text.encode([""])  # [1, 77, C]


def their_context(cim, empty: torch.Tensor, per_source: list[torch.Tensor], frames: int) -> torch.Tensor:
    """inference_2object.py's splice, re-enacted line by line for any number of sources (it has two)."""
    num_queries = 10
    uc_emb = empty.repeat(frames, 1, 1)
    for j, output_5local in enumerate(per_source):
        number_audio = output_5local.shape[0]
        audio_embedding = torch.cat([cim(output.unsqueeze(0)) for output in output_5local])
        text_emb = torch.cat([audio_embedding[i].unsqueeze(0).repeat_interleave(8, dim=0)
                              for i in range(number_audio)], dim=0)
        split_size = frames // 8
        rows = slice(j * num_queries + 1, (j + 1) * num_queries + 1)
        try:
            uc_emb[:, rows] = text_emb[:frames]
        except RuntimeError:
            for i in range(split_size):
                uc_emb[i * 8:(i + 1) * 8, rows] = text_emb[:8]
    return uc_emb


class TheirModel(torch.nn.Module):
    """What their sampler and decode read from LatentDiffusion; the methods are theirs, called on this object."""

    def __init__(self, unet, vae, empty, pos):
        super().__init__()
        from lvdm.models.ddpm3d import DDPM, DiffusionWrapper
        from maestro_videocrafter.config import VC2_DIFFUSION

        self.model = DiffusionWrapper.__new__(DiffusionWrapper)  # its __init__ builds the UNet from a config
        torch.nn.Module.__init__(self.model)
        self.model.diffusion_model, self.model.conditioning_key = unet, "crossattn"
        self.first_stage_model = vae
        self.scale_factor = VC2_DIFFUSION["scale_factor"]
        self.v_posterior, self.parameterization = 0.0, "eps"
        DDPM.register_schedule(self, beta_schedule="linear", timesteps=1000,
                               linear_start=VC2_DIFFUSION["linear_start"], linear_end=VC2_DIFFUSION["linear_end"])
        # LatentDiffusion.__init__'s use_scale lines (scale_a 1, scale_b 0.7, mid_step 400, fix_scale_bug off)
        import numpy as np

        scale_arr = np.concatenate((np.linspace(1.0, VC2_DIFFUSION["scale_b"], 400),
                                    np.full(self.num_timesteps, VC2_DIFFUSION["scale_b"])))
        self.register_buffer("scale_arr", torch.tensor(scale_arr, dtype=torch.float32))
        self.use_scale = True
        self.uncond_type = "empty_seq"
        self.empty, self.pos = empty, pos

    @property
    def device(self):
        return torch.device("cpu")

    def get_learned_conditioning(self, prompts):
        assert prompts == [""]
        return self.empty.clone()

    def apply_model(self, x, t, cond, **kwargs):
        from lvdm.models.ddpm3d import LatentDiffusion

        if kwargs.get("step") is True:  # the one fix: the mosaic call passes pos
            kwargs["pos"] = self.pos
        return LatentDiffusion.apply_model(self, x, t, cond, **kwargs)

    def decode_first_stage_2DAE(self, z):
        from lvdm.models.ddpm3d import LatentDiffusion

        return LatentDiffusion.decode_first_stage_2DAE(self, z)


def their_sample(model, sampler_cls, cond, args, bundle, bbox_per_frame, uc_emb_copied):
    """funcs.py batch_ddim_sampling, re-enacted (n_samples 1, no image embedder, no temporal guidance)."""
    from maestro_videocrafter.testing import PAPER_LATENT

    noise_shape = [1, PAPER_LATENT[0], FRAMES, *PAPER_LATENT[1:]]
    uc_emb = model.get_learned_conditioning([""])
    uc_emb = uc_emb.repeat(args.frames, 1, 1)  # args.original is False
    uc = {key: cond[key] for key in cond.keys()}
    uc.update({"c_crossattn": [uc_emb]})
    sampler = sampler_cls(model)
    torch.manual_seed(NOISE_SEED)
    samples, _ = sampler.sample(S=STEPS, conditioning=cond, batch_size=noise_shape[0], shape=noise_shape[1:],
                                verbose=False, unconditional_guidance_scale=CFG, unconditional_conditioning=uc,
                                eta=ETA, temporal_length=noise_shape[2], conditional_guidance_scale_temporal=None,
                                args=args, bundle=bundle, bbox_per_frame=bbox_per_frame,
                                uc_emb_copied=uc_emb_copied, context_next=None, clean_cond=True)
    images = model.decode_first_stage_2DAE(samples)  # [1, 3, T, H, W]
    video = torch.clamp(images[0].float(), -1.0, 1.0).permute(1, 0, 2, 3)  # save_videos' lines, one sample
    frames = ((video + 1.0) / 2.0 * 255).to(torch.uint8).permute(0, 2, 3, 1)
    return samples, frames


def main(checkout: str) -> None:
    os.environ["PYTHONBREAKPOINT"] = "0"
    stub_xformers()
    sys.path.insert(0, str(Path(checkout).resolve()))
    import yaml
    from lvdm.models.autoencoder import AutoencoderKL
    from lvdm.models.samplers.ddim import DDIMSampler
    from lvdm.modules.networks.openaimodel3d import UNetModel
    from scripts.evaluation.audio_resampler import AudioResampler
    from TrailBlazer.Utils import keyframed_bbox

    from maestro_videocrafter.testing import paper_cim_config, paper_config, seeded_state_dicts

    class Sampler(DDIMSampler):
        def register_buffer(self, name, attr):  # theirs moves every tensor to CUDA
            setattr(self, name, attr)

    config = paper_config()
    states = seeded_state_dicts(SEED)
    unet = UNetModel(**config["unet_config"]).eval()
    unet.load_state_dict(states["unet"], strict=True)
    vae = AutoencoderKL(config["ddconfig"], {"target": "torch.nn.Identity"}, config["embed_dim"]).eval()
    vae.load_state_dict(states["vae"], strict=True)
    cim = AudioResampler(**paper_cim_config()).eval()
    cim.load_state_dict(states["cim"], strict=True)
    bundle = yaml.load((Path(checkout) / "TrailBlazer" / "MultiSubjects.yaml").read_text(), Loader=yaml.FullLoader)

    out: dict = {"commit": PAPER_COMMIT, "seed": SEED, "noise_seed": NOISE_SEED, "steps": STEPS, "step_ctrl": STEP_CTRL, "cfg": CFG,
                 "eta": ETA, "fps": FPS, "frames": FRAMES, "clips": torch.tensor(CLIPS)}
    with torch.no_grad():
        empty = empty_prompt(states)
        source_tokens = tokens(CLIPS)
        out["tokens"] = source_tokens
        context = their_context(cim, empty, source_tokens, FRAMES)
        out["context"] = context
        out["mapping"] = []
        for frames, clips in MAPPING:
            toks = tokens(clips)
            out["mapping"].append({"frames": frames, "tokens": toks,
                                   "context": their_context(cim, empty, toks, frames)})
        for name, (pos, step_ctrl) in CASES.items():
            args = Namespace(step_ctrl=step_ctrl, pos=pos, frames=FRAMES, original=False)
            model = TheirModel(unet, vae, empty, pos)
            case_bundle = bundle if pos is not None else None
            bbox_per_frame = keyframed_bbox(bundle, FRAMES) if pos is not None else None
            cond = {"c_crossattn": [context.clone()], "fps": FPS}
            latents, frames = their_sample(model, Sampler, cond, args, case_bundle, bbox_per_frame,
                                           empty.repeat(FRAMES, 1, 1))
            out[name] = {"latents": latents, "frames": frames}
            print(f"{name}: latents |max| {latents.abs().max():.3g}, frames mean {frames.float().mean():.1f}")
    torch.save(out, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
