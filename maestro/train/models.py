"""The frozen models of CIM training: Stable Diffusion 2.1 (diffusers), the OpenCLIP text tower, and tiny stand-ins.

The tiny models (`--tiny`) are random and small but of the same classes and call paths as the real ones, so a smoke test
runs every line that a real run runs.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Callable, Iterator

import torch
from torch import nn

from maestro.errors import UsageError, WeightsError
from maestro.types import Audio, Tokens

# Stable Diffusion 2.1's noise schedule (its scheduler/scheduler_config.json); --tiny uses it too.
SD21_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                     prediction_type="v_prediction", clip_sample=False, steps_offset=1)
TINY_WIDTH = 32  # text width = UNet cross-attention width = CIM output width in --tiny


def load_scheduler(sd: str | None) -> Any:
    """The training noise scheduler of `sd` (a diffusers folder or hub id); None: SD 2.1's schedule (--tiny)."""
    from diffusers import DDPMScheduler

    if sd is None:
        return DDPMScheduler(**SD21_SCHEDULE)
    return _from_pretrained(DDPMScheduler, sd, "scheduler")


def load_vae(sd: str | None, seed: int = 0) -> Any:
    """`sd`'s AutoencoderKL; None: a random 4-level one (8x downsampling like SD's, 8 channels wide)."""
    from diffusers import AutoencoderKL

    if sd is not None:
        return _from_pretrained(AutoencoderKL, sd, "vae")
    with _seeded(seed):
        return AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4, sample_size=32,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 8, 8, 8),
        )


def load_unet(sd: str | None, seed: int = 0) -> Any:
    """`sd`'s UNet2DConditionModel; None: a random 2-level one with cross-attention width 32."""
    from diffusers import UNet2DConditionModel

    if sd is not None:
        return _from_pretrained(UNet2DConditionModel, sd, "unet")
    with _seeded(seed + 2):
        return UNet2DConditionModel(
            sample_size=4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=TINY_WIDTH, attention_head_dim=4, norm_num_groups=8,
        )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Build a tiny model from `seed` (the same on every process) without touching the run's own RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _from_pretrained(cls: Any, sd: str, subfolder: str) -> Any:
    try:
        return cls.from_pretrained(sd, subfolder=subfolder)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"could not load the {subfolder} of Stable Diffusion from {sd!r} ({first}). Give --sd a local diffusers "
            "folder (unet/, vae/, scheduler/) or a Hugging Face id that is cached or reachable online "
            "(downloads need HF_HUB_OFFLINE unset)."
        ) from exc


class TextEmbedder(nn.Module):
    """Per-token OpenCLIP text embeddings `[n, 77, width]`, as the paper's `FrozenOpenCLIPEmbedder`.

    `layer="last"` runs every transformer block, "penultimate" all but the last; then the final LayerNorm.
    """

    def __init__(self, model: nn.Module, tokenizer: Callable[[list[str]], torch.Tensor], layer: str, name: str) -> None:
        super().__init__()
        if layer not in ("last", "penultimate"):
            raise UsageError(f"text layer must be last or penultimate, not {layer!r}")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.layer = layer
        self.name = f"{name}@{layer}"

    @property
    def width(self) -> int:
        return int(self.model.token_embedding.weight.shape[1])

    @torch.no_grad()
    def forward(self, texts: list[str]) -> torch.Tensor:
        m = self.model
        device = m.token_embedding.weight.device
        tokens = self.tokenizer(texts).to(device)
        x = m.token_embedding(tokens) + m.positional_embedding
        blocks = list(m.transformer.resblocks)
        if self.layer == "penultimate":
            blocks = blocks[:-1]
        batch_first = getattr(m.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in blocks:
            x = block(x, attn_mask=m.attn_mask)
        if not batch_first:
            x = x.transpose(0, 1)
        return m.ln_final(x).float()


def load_text_embedder(spec: str, layer: str) -> TextEmbedder:
    """`ARCH:PRETRAINED` (an open_clip tag or a checkpoint path), e.g. the paper's `ViT-H-14:laion2b_s32b_b79k`."""
    import open_clip

    arch, sep, pretrained = spec.partition(":")
    if not sep or not arch or not pretrained:
        raise UsageError(
            f"--text-encoder must look like ARCH:PRETRAINED (e.g. ViT-H-14:laion2b_s32b_b79k), not {spec!r}")
    try:
        model = open_clip.create_model(arch, pretrained=pretrained, device="cpu")
    except (RuntimeError, OSError, ValueError) as exc:
        raise WeightsError(f"could not load OpenCLIP {spec!r}: {exc}. Check the name, or give a local checkpoint "
                           "path after the colon.") from exc
    if hasattr(model, "visual"):
        del model.visual  # only the text tower is used
    return TextEmbedder(model, open_clip.get_tokenizer(arch), layer, spec)


def tiny_text_embedder(seed: int, layer: str) -> TextEmbedder:
    import open_clip
    from open_clip.transformer import TextTransformer

    with _seeded(seed + 1):
        model = TextTransformer(context_length=77, vocab_size=49408, width=TINY_WIDTH, heads=2, layers=2,
                                output_dim=TINY_WIDTH)
    return TextEmbedder(model, open_clip.tokenize, layer, f"tiny-{seed}")


class TinyAudioEncoder:
    """A deterministic stand-in for ImageBind in smoke tests: per 2 s clip, 8 tokens x 24 of banded log energy
    through a fixed random projection. Same output type and clip layout as the real encoder."""

    name = "tiny"

    def __init__(self, tokens: int = 8, bands: int = 12, dim: int = 24) -> None:
        g = torch.Generator().manual_seed(1234)
        self.tokens, self.bands = tokens, bands
        self.projection = torch.randn(bands, dim, generator=g) / bands**0.5

    def encode(self, source: Audio, ctx: Any) -> Tokens:
        mono = source.samples.float().mean(dim=0)
        step = int(2 * source.sample_rate)
        width = -(-step // self.tokens) * self.tokens  # a whole number of samples per token
        times, feats = [], []
        for start in range(0, mono.numel(), step):
            piece = mono[start:start + step]
            clip = torch.nn.functional.pad(piece, (0, width - piece.numel()))
            spectrum = torch.fft.rfft(clip.view(self.tokens, -1), dim=-1).abs() ** 2
            bands = torch.stack([b.mean(dim=-1) for b in spectrum.chunk(self.bands, dim=-1)], dim=-1)
            feats.append(torch.log(bands + 1e-6) @ self.projection / 10)
            times.append((start / source.sample_rate, min(start + step, mono.numel()) / source.sample_rate))
        return Tokens(torch.stack(feats), times, label=source.label, encoder=self.name)


def build_audio_encoder(name: str, options: dict[str, str]) -> Any:
    """`tiny` (training smoke tests only) or any registered audio encoder, built with its options."""
    if name == "tiny":
        if options:
            raise UsageError("the tiny training encoder takes no options")
        return TinyAudioEncoder()
    from maestro.plugins import get_plugins

    return get_plugins().build("audio_encoder", name, options)


def fingerprint(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]
