"""The paper's CIM training objective as one module (so one DistributedDataParallel wrapper syncs all it trains).

Per training pair (a 2 s clip's audio tokens, one frame of the video):
  context = empty-prompt embedding with rows 1..N replaced by CIM(tokens)       (maestro.condition.splice)
  latent  = sample of the frame's cached VAE distribution x scaling factor
  noisy   = scheduler.add_noise(latent, noise, t),  t ~ U{0..T-1} per pair
  target  = the scheduler's velocity v (SD 2.1 predicts v), or the noise for epsilon models
  loss    = w_d * MSE(UNet(noisy, t, context), target) + w_m * MSE(context, text embedding of the class label)
The second term compares the whole 77-row context with the label's 77 rows, as the paper's code does (only the CIM rows
carry gradient). Besides the CIM, the paper also trains the UNet's cross-attention key/value projections (`attn2.to_k`,
`attn2.to_v`); `train_unet_kv=False` keeps the UNet entirely frozen.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from maestro.condition.splice import splice_sources


def unet_kv_names(unet: nn.Module) -> list[str]:
    """The UNet parameters the paper trains: cross-attention key and value projections."""
    return [n for n, _ in unet.named_parameters() if "attn2" in n and (".to_k." in n or ".to_v." in n)]


class CIMObjective(nn.Module):
    def __init__(self, cim: nn.Module, unet: nn.Module, scheduler: Any, empty_context: torch.Tensor,
                 scaling_factor: float, denoise_weight: float = 0.9, mse_weight: float = 0.1,
                 train_unet_kv: bool = True) -> None:
        super().__init__()
        self.cim = cim
        self.unet = unet
        self.scheduler = scheduler  # not a module: its tables move to the batch's device inside add_noise
        self.register_buffer("empty_context", empty_context.float(), persistent=False)
        self.scaling_factor = scaling_factor
        self.denoise_weight = denoise_weight
        self.mse_weight = mse_weight
        self.prediction_type = scheduler.config.prediction_type
        unet.requires_grad_(False)
        if train_unet_kv:
            names = set(unet_kv_names(unet))
            for name, param in unet.named_parameters():
                param.requires_grad_(name in names)
        cim.requires_grad_(True)

    def forward(self, tokens: torch.Tensor, moments: torch.Tensor,
                label_context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens [P, T, D], moments [P, 2c, h, w], label_context [P, 77, C] -> (loss, denoising, mse)."""
        pairs = tokens.shape[0]
        audio_tokens = self.cim(tokens.float())
        context, _ = splice_sources(self.empty_context.expand(pairs, -1, -1), [audio_tokens])

        mean, logvar = moments.float().chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))  # diffusers' DiagonalGaussianDistribution
        latents = (mean + std * torch.randn_like(mean)) * self.scaling_factor
        noise = torch.randn_like(latents)
        steps = self.scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (pairs,), device=latents.device).long()
        noisy = self.scheduler.add_noise(latents, noise, t)
        if self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, t)
        elif self.prediction_type == "epsilon":
            target = noise
        else:
            raise ValueError(f"unsupported prediction type {self.prediction_type!r}")
        pred = self.unet(noisy, t, context).sample

        denoise = F.mse_loss(pred.float(), target.float())
        mse = F.mse_loss(context.float(), label_context.float())
        loss = self.denoise_weight * denoise + self.mse_weight * mse
        return loss, denoise.detach(), mse.detach()

    def unet_kv_state(self) -> dict[str, torch.Tensor]:
        params = dict(self.unet.named_parameters())
        return {n: params[n].detach().cpu().clone() for n in unet_kv_names(self.unet) if params[n].requires_grad}
