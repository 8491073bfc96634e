"""The diffusers processor adapter on tiny random diffusers modules (no weights, no hub)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
from diffusers.models.attention_processor import Attention  # noqa: E402

from maestro.attention.diffusers import DenoiseState, MosaicAttnProcessor, set_mosaic_processors  # noqa: E402
from maestro.attention.hookpoint import plain_attention  # noqa: E402
from maestro.attention.mosaic import AttentionMosaic  # noqa: E402
from maestro.condition.splice import token_groups  # noqa: E402
from maestro.types import Layout  # noqa: E402

CTX, ROWS, N = 12, 77, 10


def tiny_attention(seed: int = 0) -> Attention:
    torch.manual_seed(seed)
    return Attention(query_dim=16, cross_attention_dim=CTX, heads=2, dim_head=8).eval()


def moving_layout(frames: int) -> Layout:
    return Layout(
        boxes=[[(0.15 * f, 0, 0.15 * f + 0.5, 0.6) for f in range(frames)], [(0.5, 0.5, 1, 1)] * frames],
        labels=["a", "b"],
    )


def test_plain_hook_reproduces_diffusers_processor() -> None:
    attn = tiny_attention()
    x, ctx = torch.randn(3, 20, 16), torch.randn(3, ROWS, CTX)
    with torch.no_grad():
        expected = attn(x, encoder_hidden_states=ctx)
        attn.set_processor(MosaicAttnProcessor(plain_attention, 4, 5, token_groups(2, N)))
        got = attn(x, encoder_hidden_states=ctx)
        self_attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
        expected_self = self_attn(x)
        self_attn.set_processor(MosaicAttnProcessor(plain_attention, 4, 5, token_groups(2, N)))
        got_self = self_attn(x)  # self-attention through the processor stays plain
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_self, expected_self, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("level,grid", [(0, (6, 10)), (1, (3, 5)), (2, (2, 3))])
def test_mosaic_through_diffusers_keeps_each_source_in_its_region(level: int, grid: tuple[int, int]) -> None:
    frames, videos = 4, 2
    layout = moving_layout(frames)
    attn = tiny_attention(1)
    groups = token_groups(2, N)
    state = DenoiseState(step=30, num_steps=50)
    attn.set_processor(MosaicAttnProcessor(AttentionMosaic(layout), 6, 10, groups, frames, state, layer="attn2"))
    h, w = grid
    x, ctx = torch.randn(videos * frames, h * w, 16), torch.randn(videos * frames, ROWS, CTX)
    with torch.no_grad():
        base = attn(x, encoder_hidden_states=ctx)
        for j, rows in enumerate(groups):
            ctx2 = ctx.clone()
            ctx2[:, rows] += torch.randn_like(ctx2[:, rows])
            changed = (attn(x, encoder_hidden_states=ctx2) - base).abs().amax(dim=-1) > 0  # [videos*frames, h*w]
            for i in range(videos * frames):
                region = (layout.at(h, w, i % frames) == j).reshape(-1)
                assert torch.equal(changed[i], region), f"level {level}, source {j}, batch index {i}"


def test_batched_guidance_runs_the_first_half_unconditionally() -> None:
    frames = 2
    layout = moving_layout(frames)
    groups = token_groups(2, N)
    attn = tiny_attention(2)
    x, ctx = torch.randn(2 * frames, 12, 16), torch.randn(2 * frames, ROWS, CTX)
    with torch.no_grad():
        plain = attn(x, encoder_hidden_states=ctx)
        state = DenoiseState(step=10, num_steps=50, batched_guidance=True)
        attn.set_processor(MosaicAttnProcessor(AttentionMosaic(layout), 3, 4, groups, frames, state))
        out = attn(x, encoder_hidden_states=ctx)
    torch.testing.assert_close(out[:frames], plain[:frames], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out[frames:], plain[frames:])


def test_unknown_query_count_is_explained() -> None:
    proc = MosaicAttnProcessor(plain_attention, 6, 10, token_groups(2, N))
    assert proc.grid(60) == (6, 10) and proc.grid(15) == (3, 5) and proc.grid(1) == (1, 1)
    with pytest.raises(ValueError, match="no level"):
        proc.grid(7)


def test_set_on_every_cross_attention_of_a_tiny_unet() -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CTX, attention_head_dim=4, norm_num_groups=8,
    ).eval()
    x, t, ctx = torch.randn(1, 4, 6, 10), torch.tensor([10]), torch.randn(1, ROWS, CTX)
    with torch.no_grad():
        expected = unet(x, t, encoder_hidden_states=ctx).sample
        set_mosaic_processors(unet, plain_attention, 6, 10, token_groups(2, N))
        assert torch.allclose(unet(x, t, encoder_hidden_states=ctx).sample, expected, rtol=1e-5, atol=1e-5)
        layout = Layout(boxes=[[(0, 0, 0.5, 1)], [(0.5, 0, 1, 1)]], labels=["a", "b"])
        state = set_mosaic_processors(unet, AttentionMosaic(layout), 6, 10, token_groups(2, N))
        names = [n for n, p in unet.attn_processors.items() if isinstance(p, MosaicAttnProcessor)]
        assert names and all("attn2" in n for n in names)
        state.step = 20
        mosaic = unet(x, t, encoder_hidden_states=ctx).sample
    assert mosaic.shape == expected.shape and not torch.allclose(mosaic, expected)
