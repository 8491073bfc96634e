"""Reading the released `model.ckpt` unchanged and loading it strictly into our three networks.

The checkpoint's `state_dict` holds `model.diffusion_model.*` (UNet), `first_stage_model.*` (autoencoder) and
`cond_stage_model.model.*` (OpenCLIP text tower), next to unprefixed noise-schedule buffers that we recompute (and
compare, see `schedule_mismatch`) and possibly EMA copies (`model_ema.*`), which are ignored. Anything else, and any
missing or mis-shaped parameter, is an error that lists the keys.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from maestro import checkpoints
from maestro.checkpoints import listing
from maestro.errors import WeightsError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."
PREFIXES = {"unet": UNET_PREFIX, "vae": VAE_PREFIX, "text": TEXT_PREFIX}

SCHEDULE_BUFFERS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "scale_arr", "scale_factor",
    "logvar", "lvlb_weights",
})
IGNORED_PREFIXES = ("model_ema.",)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The flat state dict of a VideoCrafter checkpoint (its `state_dict` entry, or the file itself if flat).

    Memory-maps the file when it is in torch's zip format, so the 1.85 B parameters are not all read at once.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {str(path)!r} does not exist")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # only the legacy (non-zip) format refuses mmap; read it normally
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Either not a torch file at all, or one that pickles Python objects (never unpickled here, for safety).
        raise WeightsError(
            f"cannot read checkpoint {path} as tensors only ({checkpoints.unpickler_reason(exc)}). If it is a genuine "
            "checkpoint that also pickles training state, save its state dict once from a trusted copy: "
            "torch.save({'state_dict': torch.load(p, weights_only=False)['state_dict']}, out)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file fails in many ways
        raise WeightsError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} is not a checkpoint: expected a state dict, found {type(obj).__name__}")
    return dict(obj)


def split_state_dict(state: Mapping[str, torch.Tensor], source: str,
                     parts: tuple[str, ...] = ("unet", "vae", "text")) -> dict[str, dict[str, torch.Tensor]]:
    """{part: state dict with its prefix stripped}; unknown keys are an error, schedule/EMA entries are skipped."""
    out: dict[str, dict[str, torch.Tensor]] = {p: {} for p in parts}
    unexpected = []
    for key, value in state.items():
        for part, prefix in PREFIXES.items():
            if key.startswith(prefix):
                if part in out:
                    out[part][key[len(prefix):]] = value
                break
        else:
            if key not in SCHEDULE_BUFFERS and not key.startswith(IGNORED_PREFIXES):
                unexpected.append(key)
    if unexpected:
        raise WeightsError(
            f"{source} has {len(unexpected)} key(s) that belong to no part of VideoCrafter2: {listing(unexpected)}"
        )
    return out


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str,
                assign: bool = False) -> None:
    """Load `state` into `module` requiring exactly its parameter names and shapes; `WeightsError` listing them."""
    checkpoints.load_strict(module, state, f"the {what} of this config", source,
           "Is the config (option `config`) the one this checkpoint was trained with?", assign=assign)


def schedule_mismatch(state: Mapping[str, torch.Tensor], alphas_cumprod: torch.Tensor,
                      scale_arr: torch.Tensor | None) -> str | None:
    """A sentence if the checkpoint's own schedule buffers disagree with the schedule we compute, else None."""
    theirs = state.get("alphas_cumprod")
    if theirs is not None:
        if theirs.shape != alphas_cumprod.shape or not torch.allclose(theirs.float(), alphas_cumprod, atol=1e-5):
            return "the checkpoint's alphas_cumprod differ from the config's beta schedule"
    theirs = state.get("scale_arr")
    if theirs is not None and scale_arr is not None:
        n = min(theirs.shape[0], scale_arr.shape[0])
        if not torch.allclose(theirs[:n].float(), scale_arr[:n], atol=1e-5):
            return "the checkpoint's scale_arr differs from the config's use_scale schedule"
    return None
