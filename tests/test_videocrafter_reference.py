"""Our VideoCrafter2 networks against numbers the original code computed, and across other tiny configurations."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_videocrafter")

from maestro_videocrafter import AutoencoderKL, UNet3D  # noqa: E402
from maestro_videocrafter.attention import HookCall, set_attention_impl  # noqa: E402
from maestro_videocrafter.text import OpenCLIPTextEncoder, tokenize  # noqa: E402

from conftest import SHARED  # noqa: E402

REFERENCE = SHARED / "reference" / "vc2_tiny_reference.pt"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.is_file():
        pytest.skip("shared/reference/vc2_tiny_reference.pt is not beside the repo")
    return torch.load(REFERENCE, map_location="cpu", weights_only=True)


def _strip(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_unet_reproduces_the_original(reference):
    unet = UNet3D(**reference["unet_config"]).eval()
    unet.load_state_dict(_strip(reference["state_dict"], "model.diffusion_model."), strict=True)
    inputs = reference["unet_inputs"]
    with torch.no_grad():
        out = unet(inputs["x"], inputs["timesteps"], inputs["context"], inputs["fps"])
        # The same context given per frame (the paper's layout) must be the same computation.
        t = inputs["x"].shape[2]
        per_frame = unet(inputs["x"], inputs["timesteps"], inputs["context"].repeat_interleave(t, 0), inputs["fps"])
    assert out.shape == reference["unet_output"].shape
    assert (out - reference["unet_output"]).abs().max().item() <= 1e-4
    assert torch.allclose(out, per_frame, atol=1e-5)


def test_autoencoder_reproduces_the_original(reference):
    vae = AutoencoderKL(reference["ddconfig"], reference["embed_dim"]).eval()
    vae.load_state_dict(_strip(reference["state_dict"], "first_stage_model."), strict=True)
    with torch.no_grad():
        moments = vae.moments(reference["vae_encoder_input"])
        decoded = vae.decode(reference["vae_decoder_input"])
        mean = vae.encode(reference["vae_encoder_input"])
    assert (moments - reference["vae_moments"]).abs().max().item() <= 1e-4
    assert (decoded - reference["vae_decoded"]).abs().max().item() <= 1e-4
    assert torch.allclose(mean, moments[:, : reference["embed_dim"]])


def test_decode_video_in_chunks_equals_all_at_once(reference):
    vae = AutoencoderKL(reference["ddconfig"], reference["embed_dim"]).eval()
    vae.load_state_dict(_strip(reference["state_dict"], "first_stage_model."), strict=True)
    z = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        chunked = vae.decode_video(z, chunk=2)
        whole = vae.decode(z[0].permute(1, 0, 2, 3)).permute(1, 0, 2, 3)[None]
    assert chunked.shape == (1, 3, 3, 64, 64)
    assert torch.allclose(chunked, whole, atol=1e-5)


BASE = {
    "in_channels": 4, "out_channels": 4, "model_channels": 32, "attention_resolutions": [4, 2, 1],
    "num_res_blocks": 1, "channel_mult": [1, 2, 2], "num_head_channels": 16, "transformer_depth": 1,
    "context_dim": 24, "use_linear": True, "temporal_conv": True, "temporal_attention": True,
    "temporal_selfatt_only": True, "use_relative_position": False, "use_causal_attention": False,
    "temporal_length": 3, "addition_attention": True, "fps_cond": True,
}
VARIANTS = {
    "vc2-like": {},
    "other-mult-and-attention": {"channel_mult": [1, 3], "attention_resolutions": [2]},
    "num-heads-conv-proj": {"num_head_channels": -1, "num_heads": 4, "use_linear": False, "transformer_depth": 2},
    "plain": {"addition_attention": False, "fps_cond": False, "temporal_conv": False, "temporal_attention": False},
    "film-resblock-updown-causal": {"use_scale_shift_norm": True, "resblock_updown": True,
                                    "use_causal_attention": True, "tempspatial_aware": True,
                                    "conv_resample": False, "num_res_blocks": 2},
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_other_tiny_configs(name):
    config = {**copy.deepcopy(BASE), **VARIANTS[name]}
    torch.manual_seed(0)
    unet = UNet3D(**config).eval()
    b, t = 2, 3
    x = torch.randn(b, 4, t, 8, 8)
    context = torch.randn(b * t, 5, config["context_dim"])
    calls = HookCall(hook=lambda q, k, v, site: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    with torch.no_grad():
        out = unet(x, torch.tensor([10, 500]), context, 8, call=calls)
        plain = unet(x, torch.tensor([10, 500]), context, 8)
        set_attention_impl(unet, "math")
        math_out = unet(x, torch.tensor([10, 500]), context, 8)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.allclose(out, plain, atol=1e-5)  # a pass-through hook changes nothing
    assert torch.allclose(out, math_out, atol=1e-4)  # fused and materialised attention agree
    depth = config["transformer_depth"]
    assert len(unet.hook_layers) > 0 and set(calls.counts) == set(unet.hook_layers)
    assert all(n == 1 for n in calls.counts.values()) and all(n.endswith("attn2") for n in unet.hook_layers)
    assert len(unet.hook_layers) % depth == 0
    # The model is rebuilt from its own state dict: names and shapes are stable for every variant.
    twin = UNet3D(**config)
    twin.load_state_dict(unet.state_dict(), strict=True)


def test_per_frame_context_reaches_each_frame():
    torch.manual_seed(0)
    config = {**copy.deepcopy(BASE), "temporal_attention": False, "temporal_conv": False,
              "addition_attention": False}  # without temporal layers frames are independent
    unet = UNet3D(**config).eval()
    x = torch.randn(1, 4, 3, 8, 8)
    ctx = torch.randn(3, 5, 24)
    changed = ctx.clone()
    changed[2] += 1.0
    with torch.no_grad():
        a = unet(x, torch.tensor([300]), ctx, 8)
        b = unet(x, torch.tensor([300]), changed, 8)
    assert torch.allclose(a[:, :, :2], b[:, :, :2], atol=1e-6)
    assert not torch.allclose(a[:, :, 2], b[:, :, 2], atol=1e-3)


def test_hook_sees_heads_grid_and_can_change_the_output():
    torch.manual_seed(0)
    unet = UNet3D(**copy.deepcopy(BASE)).eval()
    x = torch.randn(1, 4, 3, 8, 16)
    seen = []

    def zero_hook(q, k, v, site):
        seen.append((q.shape, k.shape, site))
        return torch.zeros_like(q)

    call = HookCall(hook=zero_hook, step=4, num_steps=9, token_groups=(slice(1, 3),), conditional=False)
    with torch.no_grad():
        hooked = unet(x, torch.tensor([300]), torch.randn(1, 5, 24), 8, call=call)
        plain = unet(x, torch.tensor([300]), torch.randn(1, 5, 24), 8)
    assert not torch.allclose(hooked, plain)
    q_shape, k_shape, site = seen[0]
    assert site.layer == "input_blocks.1.1.transformer_blocks.0.attn2"
    assert (site.height, site.width, site.frames, site.step, site.num_steps) == (8, 16, 3, 4, 9)
    assert site.conditional is False and site.token_groups == (slice(1, 3),)
    assert q_shape == (3, 2, 8 * 16, 16) and k_shape == (3, 2, 5, 16)  # [B*T, heads, HW, d], [B*T, heads, L, d]


def test_text_encoder_matches_open_clip_penultimate():
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=16),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=3),
    ).eval()
    del clip.visual  # as VideoCrafter's FrozenOpenCLIPEmbedder does
    ours = OpenCLIPTextEncoder(vocab_size=49408, width=32, heads=2, layers=3, embed_dim=16).eval()
    ours.load_state_dict(clip.state_dict(), strict=True)
    tokens = tokenize(["", "a dog barks next to a red car"])
    assert tokens[0, :2].tolist() == [49406, 49407] and tokens[0, 2:].eq(0).all()
    with torch.no_grad():
        # VideoCrafter's encode_with_transformer, layer="penultimate": every block but the last, then ln_final.
        x = clip.token_embedding(tokens) + clip.positional_embedding
        batch_first = getattr(clip.transformer, "batch_first", False)
        x = x if batch_first else x.permute(1, 0, 2)
        for block in clip.transformer.resblocks[:-1]:
            x = block(x, attn_mask=clip.attn_mask)
        x = x if batch_first else x.permute(1, 0, 2)
        expected = clip.ln_final(x)
        got = ours(tokens)
    assert got.shape == (2, 77, 32)
    assert (got - expected).abs().max().item() <= 1e-5
