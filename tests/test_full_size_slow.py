"""Full-size checks with random weights: what the tiny-config tests cannot show (`pytest -m slow`, about 1 minute).

- ImageBind-huge's audio branch (768 wide, 12 blocks, 12 heads): our encoder's tokens equal the `imagebind` package's
  own audio branch on the same random weights, saved in the package's key layout; the parameter count is derived here
  and cross-checked against the package's audio modules.
- The CIM at the paper's release size: a `perceiver.pth` written from perceiver_keys.tsv's names and shapes (with
  DDP's `module.` prefix) loads strictly into the default model, every tensor under its own name, and runs.
- VideoCrafter2's UNet at the released config (1.41 B parameters, 5.7 GB in float32): a real forward on a small
  latent; fused (SDPA) and plain attention agree; a pass-through hook reproduces the unhooked output.

Every model here is built by the test with random weights; nothing is downloaded. Heavy imports live inside the
fixtures and tests, so collecting this file for `pytest -m "not slow"` imports nothing but pytest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED, imagebind_package

pytestmark = [pytest.mark.slow]

PERCEIVER_KEYS = SHARED / "reference" / "perceiver_keys.tsv"


def _perturb(module, std: float, seed: int) -> None:
    """Add noise to every parameter, so that no LayerNorm weight is 1 and no bias 0: a key that lands in the wrong
    place, or a norm or bias that is skipped, changes the output."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


# -- ImageBind-huge audio branch ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def huge_audio_package_model():
    """The package's ImageBindModel with ImageBind-huge's audio settings (and its 1024-wide output embedding); every
    other modality tiny, since only the audio branch is compared."""
    pytest.importorskip("maestro_imagebind", reason="install plugins/maestro-imagebind")
    _, imagebind_model = imagebind_package()
    import torch

    torch.manual_seed(0)
    tiny = dict(embed_dim=16, num_blocks=1, num_heads=2)
    model = imagebind_model.ImageBindModel(
        out_embed_dim=1024,
        audio_embed_dim=768, audio_num_blocks=12, audio_num_heads=12, audio_drop_path=0.1,
        audio_kernel_size=16, audio_stride=10, audio_num_mel_bins=128, audio_target_len=204,
        **{f"{m}_{k}": v for m in ("vision", "text", "depth", "thermal", "imu") for k, v in tiny.items()},
    )
    # 0.02: the package's own init std for Linear weights, so activations keep a trained model's scale.
    _perturb(model, std=0.02, seed=1)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def huge_audio_checkpoint(huge_audio_package_model, tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("imagebind_huge") / "imagebind_huge.pth"
    torch.save(huge_audio_package_model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def clip_wave():
    """4.5 s at 16 kHz: two full 2 s clips and a padded 0.5 s one. A chirp under noise, so every clip differs."""
    import torch

    g = torch.Generator().manual_seed(7)
    t = torch.arange(72_000) / 16_000
    chirp = 0.3 * torch.sin(2 * torch.pi * (200 + 400 * t) * t)
    return (chirp + 0.05 * torch.randn(t.numel(), generator=g)).float()


@pytest.fixture(scope="module")
def package_audio_tokens(huge_audio_package_model, clip_wave):
    """The package's audio preprocessor (log-mel per clip) and trunk; the head's LayerNorm applied on request."""
    import torch
    from torchvision import transforms

    from maestro_imagebind.features import clip_spans

    data, _ = imagebind_package()
    model = huge_audio_package_model
    normalize = transforms.Normalize(mean=-4.268, std=9.138)  # the package's audio loader does this after fbank
    mels = torch.stack([normalize(data.waveform2melspec(clip_wave[a:b].clone().unsqueeze(0), 16000, 128, 204))
                        for a, b in clip_spans(clip_wave.numel())])
    with torch.no_grad():
        trunk = model.modality_trunks["audio"](**model.modality_preprocessors["audio"](audio=mels)["trunk"])
        return {False: trunk, True: model.modality_heads["audio"][0](trunk)}


@pytest.mark.parametrize("head_norm", [False, True])
def test_imagebind_huge_audio_tokens_match_the_package(huge_audio_checkpoint, package_audio_tokens, clip_wave,
                                                       head_norm: bool) -> None:
    from maestro.components import RunContext
    from maestro.types import Audio
    from maestro_imagebind.encoder import ImageBindAudioEncoder

    encoder = ImageBindAudioEncoder(weights=str(huge_audio_checkpoint), head_norm=str(head_norm))  # default config
    tokens = encoder.encode(Audio(clip_wave.unsqueeze(0), 16000, label="chirp"), RunContext())
    expected = package_audio_tokens[head_norm]
    assert tokens.features.shape == expected.shape == (3, 229, 768)
    assert tokens.clip_times == [(0.0, 2.0), (2.0, 4.0), (4.0, 4.5)]
    # Not a trivially small output: the tolerance is about 1e-6 of the tokens' scale (measured difference: 0.0,
    # as the package's MultiheadAttention also runs the fused kernel here).
    assert expected.abs().max() > 1.0 and expected.std() > 0.1
    error = (tokens.features - expected).abs().max().item()
    assert error <= 1e-5, f"max abs difference {error:.2e} (tokens up to {expected.abs().max().item():.1f})"


def test_imagebind_huge_audio_parameter_count(huge_audio_package_model, huge_audio_checkpoint) -> None:
    from maestro_imagebind.audio_branch import AudioBranchConfig, ImageBindAudioBranch, read_audio_checkpoint

    cfg = AudioBranchConfig()
    d, hidden, (rows, cols) = cfg.embed_dim, cfg.embed_dim * cfg.mlp_ratio, cfg.grid
    layer_norm = 2 * d
    block = (layer_norm                       # norm_1
             + 3 * d * d + 3 * d + 2 * d      # qkv projection + bias, bias_k + bias_v
             + d * d + d                      # out_proj
             + layer_norm                     # norm_2
             + d * hidden + hidden + hidden * d + d)  # MLP
    derived = (d * cfg.kernel_size ** 2       # patch stem, no bias
               + layer_norm                   # stem norm
               + d + (1 + rows * cols) * d    # CLS token, position embedding
               + cfg.num_blocks * block
               + layer_norm)                  # head LayerNorm
    assert derived == 85_449_216

    ours = sum(p.numel() for p in ImageBindAudioBranch(cfg).parameters())
    package = huge_audio_package_model
    theirs = (sum(p.numel() for p in package.modality_preprocessors["audio"].parameters())
              + sum(p.numel() for p in package.modality_trunks["audio"].parameters())
              + sum(p.numel() for p in package.modality_heads["audio"][0].parameters()))
    read = sum(v.numel() for v in read_audio_checkpoint(huge_audio_checkpoint).values())
    assert ours == theirs == read == derived


# -- CIM (Perceiver resampler) at the paper's release size ----------------------------------------------------------

def _release_shapes() -> dict[str, tuple[int, ...]]:
    if not PERCEIVER_KEYS.is_file():
        pytest.skip("shared/reference/perceiver_keys.tsv is not beside the repo")
    lines = PERCEIVER_KEYS.read_text().splitlines()
    assert lines[0].startswith("#")  # the header comment; every other line is name<TAB>shape
    shapes = {}
    for line in lines[1:]:
        if line.strip():
            name, shape = line.split("\t")
            shapes[name] = tuple(int(s) for s in shape.split("x"))
    return shapes


def test_cim_release_size_checkpoint_round_trip(tmp_path) -> None:
    import torch

    from maestro.cim import PerceiverResampler, load_cim

    shapes = _release_shapes()
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 71_092_224

    # A perceiver.pth as DDP saved it, made from the released names and shapes only, one distinct random tensor each.
    g = torch.Generator().manual_seed(0)
    state = {name: torch.randn(shape, generator=g) * 0.05 for name, shape in shapes.items()}
    for name, value in state.items():
        if name.endswith(("norm1.weight", "norm2.weight", ".0.weight", "norm_out.weight")) and value.ndim == 1:
            value.add_(1.0)  # LayerNorm gains near 1 keep activations at a trained model's scale
    path = tmp_path / "perceiver.pth"
    torch.save({"module." + k: v for k, v in state.items()}, path)

    model = PerceiverResampler.from_checkpoint(path)  # the paper's release configuration by default
    assert sum(p.numel() for p in model.parameters()) == 71_092_224
    loaded = model.state_dict()
    assert {k: tuple(v.shape) for k, v in loaded.items()} == shapes
    assert all(torch.equal(loaded[k], state[k]) for k in shapes), "a tensor was loaded under another name"

    x = torch.randn(2, 229, 768, generator=g)
    with torch.no_grad():
        out = model(x)
        again = load_cim(path)(x)
        single = model(x[1:])
        reference = model.double()(x.double())
    assert out.shape == (2, 10, 1024) and torch.isfinite(out).all()
    assert torch.equal(again, out)
    # Measured here: 6e-6 and 7e-6 (float32 rounding of a different reduction order); mixing rows, or precision
    # trouble at full width and depth (float32 against float64 on the same weights), would be far above 1e-4.
    assert (single - out[1:]).abs().max() < 1e-4, (single - out[1:]).abs().max()
    assert (out.double() - reference).abs().max() < 1e-4, (out.double() - reference).abs().max()


# -- VideoCrafter2 UNet at the released config ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def vc2_unet():
    pytest.importorskip("maestro_videocrafter")
    import torch

    from maestro_videocrafter import UNet3D
    from maestro_videocrafter.config import VC2_UNET

    torch.manual_seed(0)
    return UNet3D(**VC2_UNET).eval().requires_grad_(False)  # dropped at module teardown


def test_vc2_unet_full_size_forward(vc2_unet) -> None:
    import torch

    from maestro.attention.hookpoint import plain_attention
    from maestro_videocrafter.attention import HookCall, set_attention_impl

    unet = vc2_unet
    assert sum(p.numel() for p in unet.parameters()) == 1_413_284_420  # model.diffusion_model.* in vc2_keys.tsv
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 2, 8, 8, generator=g)
    context = torch.randn(1, 77, 1024, generator=g)
    t = torch.tensor([500])
    sites = []

    def hook(q, k, v, site):
        sites.append((site.layer, q.shape[1], site.height, site.width, site.frames))
        return plain_attention(q, k, v, site)

    try:
        with torch.inference_mode():
            set_attention_impl(unet, "sdpa")
            fused = unet(x, t, context, 8)
            call = HookCall(hook=hook)
            hooked = unet(x, t, context, 8, call=call)
            set_attention_impl(unet, "math")
            plain = unet(x, t, context, 8)
    finally:
        set_attention_impl(unet, "sdpa")
    assert fused.shape == (1, 4, 2, 8, 8) and torch.isfinite(fused).all()
    assert fused.std() > 0.05  # random weights still give a real, non-degenerate prediction
    assert (fused - plain).abs().max() < 1e-4, (fused - plain).abs().max()
    assert (fused - hooked).abs().max() < 1e-5, (fused - hooked).abs().max()
    # Every spatial cross-attention layer handed its q, k, v to the hook once, with VC2's head counts (64 wide) and
    # its grid at that depth: 8x8 latents down to 1x1.
    assert [s[0] for s in sites] == unet.hook_layers and len(sites) == 16
    assert call.counts == {layer: 1 for layer in unet.hook_layers}
    assert {(s[1], s[2]) for s in sites} == {(5, 8), (10, 4), (20, 2), (20, 1)}
    assert all(s[2] == s[3] and s[4] == 2 for s in sites)
