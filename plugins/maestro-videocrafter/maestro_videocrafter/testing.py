"""Tiny VideoCrafter2-layout checkpoints for tests: random weights, same code path as the real model.

`write_tiny_checkpoint(path)` writes `path` (a `model.ckpt` look-alike: `{"state_dict": ...}` with the original key
prefixes and the schedule buffers beside them), a config JSON, a tiny CIM `perceiver.pth` and its config JSON, and
returns the backbone options (strings, as the CLI passes them) that use them:

    opts = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    backbone = VideoCrafter2Backbone(**opts)            # or: maestro run --backbone videocrafter2 --backbone-opt k=v
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

TINY_UNET: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "attention_resolutions": [1, 2],
    "num_res_blocks": 1,
    "channel_mult": [1, 2],
    "num_head_channels": 16,
    "transformer_depth": 1,
    "context_dim": 32,
    "use_linear": True,
    "use_checkpoint": False,
    "temporal_conv": True,
    "temporal_attention": True,
    "temporal_selfatt_only": True,
    "use_relative_position": False,
    "use_causal_attention": False,
    "temporal_length": 4,
    "addition_attention": True,
    "fps_cond": True,
}
TINY_DDCONFIG: dict[str, Any] = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 64,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}
# The vocabulary stays OpenCLIP's (the empty prompt's start/end token ids are 49406/49407); everything else is tiny.
TINY_TEXT: dict[str, Any] = {"vocab_size": 49408, "context_length": 77, "width": 32, "heads": 2, "layers": 2,
                             "embed_dim": 32, "layer": "penultimate"}


def tiny_cim_config(token_dim: int = 768, num_queries: int = 4) -> dict[str, int]:
    return {"dim": 32, "depth": 1, "dim_head": 8, "heads": 2, "num_queries": num_queries, "embedding_dim": token_dim,
            "output_dim": 32, "ff_mult": 2}


def tiny_config() -> dict[str, Any]:
    """The tiny model's config in the layout `load_config` reads."""
    from maestro_videocrafter.config import VC2_DIFFUSION

    return {"unet_config": copy.deepcopy(TINY_UNET), "ddconfig": copy.deepcopy(TINY_DDCONFIG), "embed_dim": 4,
            "text_config": copy.deepcopy(TINY_TEXT), "diffusion": dict(VC2_DIFFUSION)}


def write_tiny_checkpoint(path: str | Path, *, token_dim: int = 768, num_queries: int = 4, seed: int = 0,
                          steps: int = 2, frames: int = 4, height: int = 64, width: int = 64,
                          cfg: float = 12.0, long: str | None = "windows") -> dict[str, str]:
    """Write a tiny checkpoint, its config, a tiny CIM (for `token_dim`-wide audio tokens) and its config.

    Files: `path`, `<stem>.config.json`, `<stem>.cim.pth`, `<stem>.cim.json` beside it. Returns the backbone options;
    `long` is the long-video mode they ask for (windows, the tests' reference behaviour; None: the backbone's default).
    """
    import torch

    from maestro.cim import PerceiverResampler
    from maestro_videocrafter.backbone import build_models
    from maestro_videocrafter.config import ModelConfig

    config = tiny_config()
    cim_config = tiny_cim_config(token_dim, num_queries)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = build_models(ModelConfig.from_dict(config), "cpu")
        cim = PerceiverResampler(**cim_config)
    states = {part: {k: v.detach().clone() for k, v in net.state_dict().items()} for part, net in nets.items()}
    options = write_checkpoint_files(path, config, cim_config, {**states, "cim": cim.state_dict()})
    options.update({
        "steps": str(steps),
        "frames": str(frames),
        "height": str(height),
        "width": str(width),
        "cfg": str(cfg),
        "dtype": "fp32",
    })
    if long is not None:
        options["long"] = long
    return options


def write_checkpoint_files(path: str | Path, config: dict[str, Any], cim_config: dict[str, int],
                           states: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Write `states` (`unet`, `vae`, `text` in Maestro's layout, and `cim`) as the released files are laid out:
    `path` (a `model.ckpt` look-alike with the original prefixes and the schedule buffers), `<stem>.config.json`,
    `<stem>.cim.pth` and `<stem>.cim.json` beside it. Returns the backbone options naming them."""
    import torch

    from maestro_videocrafter.checkpoint import PREFIXES
    from maestro_videocrafter.ddim import NoiseSchedule

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {PREFIXES[part] + k: v for part in ("unet", "vae", "text") for k, v in states[part].items()}
    # The released checkpoint keeps its schedule beside the weights; so does this one (the loader checks them).
    schedule = NoiseSchedule.from_config(config["diffusion"])
    state["alphas_cumprod"] = schedule.alphas_cumprod.clone()
    if schedule.scale_arr is not None:
        state["scale_arr"] = schedule.scale_arr.clone()
    torch.save({"state_dict": state}, path)
    files = {option: path.with_name(path.stem + suffix) for option, suffix in
             (("config", ".config.json"), ("cim_weights", ".cim.pth"), ("cim_config", ".cim.json"))}
    files["config"].write_text(json.dumps(config, indent=2), encoding="utf-8")
    torch.save(states["cim"], files["cim_weights"])
    files["cim_config"].write_text(json.dumps(cim_config, indent=2), encoding="utf-8")
    return {"weights": str(path), **{option: str(file) for option, file in files.items()}}

# The paper profile's reference model (tests/data/paper_make_reference.py): the released mosaic hard-codes heads of
# 64 and token rows 1..10 / 11..20, so dim_head 64 at every attention level and a CIM of 10 queries; two levels at
# 10×16 and 5×8 (the released code's 5:8 grid) with 1 and 2 heads, 16 frames as the paper (TrailBlazer's T+1 chunks
# of T·heads // (T+1) rows are then empty at 1 head and 1 row at 2). No `init_attn` (addition_attention): at 8 heads
# of 64 it would hold most of the weights and time; test_videocrafter_reference covers it.
PAPER_UNET: dict[str, Any] = {**TINY_UNET, "model_channels": 64, "channel_mult": [1, 2], "num_head_channels": 64,
                              "temporal_length": 16, "addition_attention": False}
PAPER_LATENT = (4, 10, 16)  # channels, height, width: 80×128 pixels
PAPER_QUERIES = 10
PAPER_TOKEN_DIM = 32


def paper_config() -> dict[str, Any]:
    return {**tiny_config(), "unet_config": copy.deepcopy(PAPER_UNET)}


def paper_cim_config() -> dict[str, int]:
    return tiny_cim_config(PAPER_TOKEN_DIM, PAPER_QUERIES)


def seeded_state_dicts(seed: int = 0) -> dict[str, dict[str, Any]]:
    """Weights of the paper reference model drawn from one seeded generator, in a fixed order (not from PyTorch's
    initialisers, so the same on any version): keys `unet`, `vae`, `text` (Maestro's layout, no prefixes), `cim`."""
    import torch
    from torch import nn

    from maestro.cim import PerceiverResampler
    from maestro_videocrafter.backbone import build_models
    from maestro_videocrafter.config import ModelConfig

    nets = build_models(ModelConfig.from_dict(paper_config()), "meta")
    with torch.device("meta"):
        nets["cim"] = PerceiverResampler(**paper_cim_config())
    g = torch.Generator().manual_seed(seed)
    states = {}
    for part, net in nets.items():
        norms = {name for name, m in net.named_modules() if isinstance(m, (nn.GroupNorm, nn.LayerNorm))}
        state = {}
        for key, value in net.state_dict().items():
            if not value.is_floating_point():
                raise ValueError(f"{part}.{key}: a non-float entry cannot be drawn at random")
            noise = torch.randn(value.shape, generator=g, dtype=torch.float32)
            owner = key.rpartition(".")[0]
            if owner in norms and key.endswith("weight"):
                state[key] = 1.0 + 0.1 * noise
            elif value.dim() >= 2:
                state[key] = noise * (value[0].numel() ** -0.5)  # unit-variance outputs for unit inputs
            else:
                state[key] = 0.1 * noise
            if part == "unet" and key.startswith("out."):  # small noise predictions: CFG 12 keeps latents moderate
                state[key] = state[key] * 0.1
        states[part] = state
    return states


def write_paper_checkpoint(path: str | Path, seed: int = 0) -> dict[str, str]:
    """The paper reference model as files (`write_tiny_checkpoint`'s layout) and the backbone options that use it:
    4 DDIM steps (the reference's), CFG 12, eta 1, fps 8, 12 frames of 80×128, profile=paper."""
    options = write_checkpoint_files(path, paper_config(), paper_cim_config(), seeded_state_dicts(seed))
    options.update(steps="4", frames="12", height=str(PAPER_LATENT[1] * 8),
                   width=str(PAPER_LATENT[2] * 8), cfg="12", eta="1.0", fps="8", dtype="fp32", profile="paper")
    return options
