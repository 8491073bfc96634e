"""The Attention Mosaic hook: region exactness for any K and moving layouts, layout guidance against a plain
computation, the unconditional pass, options from the command line and the registration."""

from __future__ import annotations

import math
import sys
import subprocess

import pytest
import torch
import torch.nn.functional as F

from maestro.attention.hookpoint import AttentionSite, plain_attention
from maestro.attention.mosaic import AttentionMosaic
from maestro.condition.splice import token_groups
from maestro.errors import UsageError
from maestro.types import Layout

ROWS, HEADS, DIM, N = 77, 2, 8, 10


def still(boxes: list[tuple[float, float, float, float]], frames: int = 3) -> Layout:
    return Layout(boxes=[[b] * frames for b in boxes], labels=[f"s{i}" for i in range(len(boxes))])


LAYOUTS = {
    "halves": still([(0, 0, 0.5, 1), (0.5, 0, 1, 1)]),
    "top40-bottom60": still([(0, 0, 1, 0.4), (0, 0.4, 1, 1)]),
    "three-columns-with-gaps": still([(0, 0.2, 0.3, 0.8), (0.35, 0, 0.65, 1), (0.7, 0.1, 1, 0.6)]),
    "grid2x2": still([(0, 0, 0.5, 0.5), (0.5, 0, 1, 0.5), (0, 0.5, 0.5, 1), (0.5, 0.5, 1, 1)]),
    "overlapping": still([(0, 0, 0.8, 0.9), (0.3, 0.2, 0.7, 0.6), (0.6, 0.5, 1, 1)]),
    "moving": Layout(
        boxes=[
            [(0.1 * f, 0.0, 0.1 * f + 0.4, 0.5) for f in range(4)],
            [(0.6 - 0.1 * f, 0.4, 1.0 - 0.1 * f, 1.0) for f in range(4)],
        ],
        labels=["left-to-right", "right-to-left"],
    ),
}


def site(layout: Layout, h: int, w: int, step: int = 10, conditional: bool = True) -> AttentionSite:
    return AttentionSite(
        layer="test.attn2", height=h, width=w, frames=layout.num_frames, step=step, num_steps=20,
        token_groups=token_groups(layout.num_sources, N, ROWS), conditional=conditional,
    )


def qkv(batch_frames: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch_frames, HEADS, h * w, DIM, generator=g)
    k = torch.randn(batch_frames, HEADS, ROWS, DIM, generator=g)
    v = torch.randn(batch_frames, HEADS, ROWS, DIM, generator=g)
    return q, k, v


def owners(layout: Layout, h: int, w: int, batch: int) -> torch.Tensor:
    """`[batch * frames, h * w]` owner of each query (index i is frame i % frames), written with Layout.at."""
    per_frame = torch.stack([layout.at(h, w, f).reshape(-1) for f in range(layout.num_frames)])
    return per_frame.repeat(batch, 1)


# -- the mosaic: exactness -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("h,w", [(6, 10), (5, 8)])
@pytest.mark.parametrize("batch", [1, 2])
def test_a_source_changes_only_its_own_region(name: str, h: int, w: int, batch: int) -> None:
    layout = LAYOUTS[name]
    s = site(layout, h, w)
    hook = AttentionMosaic(layout, guidance_steps=0)
    q, k, v = qkv(batch * layout.num_frames, h, w)
    base = hook(q, k, v, s)
    owner = owners(layout, h, w, batch)
    for j, rows in enumerate(s.token_groups):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, rows] += 3 * torch.randn_like(k2[:, :, rows])
        v2[:, :, rows] += 3 * torch.randn_like(v2[:, :, rows])
        diff = (hook(q, k2, v2, s) - base).abs().amax(dim=(1, 3))  # [batch*frames, queries]
        inside = owner == j
        assert torch.count_nonzero(diff[~inside]) == 0, f"source {j} leaked outside its region"
        if inside.any():
            assert bool((diff[inside] > 0).all()), f"source {j} did not reach every position of its region"


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_matches_a_per_position_softmax_over_its_rows(name: str) -> None:
    """Every query: softmax over exactly the rows its region may read (shared rows + its source; background: shared)."""
    layout = LAYOUTS[name]
    h, w = 4, 6
    s = site(layout, h, w)
    q, k, v = qkv(layout.num_frames, h, w, seed=1)
    out = AttentionMosaic(layout, guidance_steps=0)(q, k, v, s)
    source_rows = set().union(*(set(range(g.start, g.stop)) for g in s.token_groups))
    shared = [r for r in range(ROWS) if r not in source_rows]
    owner = owners(layout, h, w, 1)
    expected = torch.empty_like(out)
    for i in range(q.shape[0]):
        for p in range(h * w):
            j = int(owner[i, p])
            rows = shared if j < 0 else sorted(shared + list(range(s.token_groups[j].start, s.token_groups[j].stop)))
            for head in range(HEADS):
                logits = k[i, head, rows] @ q[i, head, p] / math.sqrt(DIM)
                expected[i, head, p] = torch.softmax(logits, dim=0) @ v[i, head, rows]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_one_region_over_everything_is_plain_attention_bit_for_bit() -> None:
    layout = still([(0, 0, 1, 1)], frames=2)
    for h, w in [(5, 8), (3, 3)]:
        q, k, v = qkv(2, h, w, seed=2)
        out = AttentionMosaic(layout, guidance_steps=0, shared_tokens="true")(q, k, v, site(layout, h, w))
        assert torch.equal(out, plain_attention(q, k, v))


def test_background_all_reads_every_row_outside_the_boxes() -> None:
    layout = still([(0, 0, 0.25, 0.5), (0.75, 0.5, 1, 1)], frames=1)
    h, w = 4, 8
    q, k, v = qkv(1, h, w, seed=3)
    out = AttentionMosaic(layout, guidance_steps=0, background="all")(q, k, v, site(layout, h, w))
    background = owners(layout, h, w, 1)[0] < 0
    plain = plain_attention(q, k, v)
    torch.testing.assert_close(out[:, :, background], plain[:, :, background], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out[:, :, ~background], plain[:, :, ~background])


def test_shared_tokens_none_reads_only_the_source_rows() -> None:
    layout = still([(0, 0, 0.5, 1), (0.5, 0, 1, 1)], frames=1)
    h, w = 2, 4
    s = site(layout, h, w)
    q, k, v = qkv(1, h, w, seed=4)
    out = AttentionMosaic(layout, guidance_steps=0, shared_tokens="none")(q, k, v, s)
    rows = s.token_groups[0]
    ref = F.scaled_dot_product_attention(q[..., :1, :], k[:, :, rows], v[:, :, rows])  # position 0 is in the left half
    torch.testing.assert_close(out[..., :1, :], ref, rtol=1e-6, atol=1e-6)


def test_moving_layout_uses_each_frames_own_boxes() -> None:
    layout = LAYOUTS["moving"]
    h, w = 4, 10
    s = site(layout, h, w)
    hook = AttentionMosaic(layout, guidance_steps=0)
    q, k, v = qkv(layout.num_frames, h, w, seed=5)
    k2 = k.clone()
    k2[:, :, s.token_groups[0]] += 5.0
    changed = (hook(q, k2, v, s) - hook(q, k, v, s)).abs().amax(dim=(1, 3)) > 0  # [frames, queries]
    for f in range(layout.num_frames):
        assert torch.equal(changed[f], (layout.at(h, w, f) == 0).reshape(-1)), f"frame {f}"
    assert not torch.equal(changed[0], changed[-1])  # the region really moved


def test_masks_are_built_once_per_resolution_and_broadcast_for_still_layouts() -> None:
    hook = AttentionMosaic(LAYOUTS["halves"], guidance_steps=0)
    s = site(LAYOUTS["halves"], 4, 6)
    groups = s.token_groups
    first = hook.masks(4, 6, 3, groups, ROWS, 1, "cpu", torch.float32)
    assert first is hook.masks(4, 6, 3, groups, ROWS, 1, "cpu", torch.float32)
    assert first.shape == (1, 1, 24, ROWS)  # one map for every frame, broadcast over heads
    moving = AttentionMosaic(LAYOUTS["moving"], guidance_steps=0)
    assert moving.masks(4, 6, 4, groups, ROWS, 2, "cpu", torch.float32).shape == (8, 1, 24, ROWS)


# -- phases ----------------------------------------------------------------------------------------------------------
def test_unconditional_pass_is_plain_attention_in_both_phases() -> None:
    layout = LAYOUTS["grid2x2"]
    q, k, v = qkv(layout.num_frames, 4, 4, seed=6)
    hook = AttentionMosaic(layout, guidance_steps=5)
    for step in (0, 9):
        assert torch.equal(hook(q, k, v, site(layout, 4, 4, step, conditional=False)), plain_attention(q, k, v))
    assert hook.phase(site(layout, 4, 4, 4)) == "guidance"
    assert hook.phase(site(layout, 4, 4, 5)) == "mosaic"


def _window(rows: int, cols: int, sigma: float) -> list[list[float]]:
    """TrailBlazer's box window, spelled out: samples at linspace(0, n, n), centre ⌊n/2⌋, std sigma·n, peak 1."""
    def at(i: int, n: int) -> float:
        return 0.0 if n == 1 else i * n / (n - 1)

    raw = [
        [
            math.exp(-((at(y, rows) - rows // 2) ** 2) / (2 * (sigma * rows) ** 2)
                     - ((at(x, cols) - cols // 2) ** 2) / (2 * (sigma * cols) ** 2))
            for x in range(cols)
        ]
        for y in range(rows)
    ]
    peak = max(max(r) for r in raw)
    return [[value / peak for value in r] for r in raw]


def _guided_logits_plainly(layout, q, k, s, strengthen, weaken, sigma) -> torch.Tensor:
    """The paper's edit written out position by position (one video)."""
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(DIM)
    peak = float(logits.max())
    out = logits.clone()
    K = layout.num_sources
    for f in range(q.shape[0]):
        windows = torch.zeros(K, s.height, s.width)
        for j in range(K):
            x0, y0, x1, y1 = layout.pixel_box(j, f, s.height, s.width)
            windows[j, y0:y1, x0:x1] = torch.tensor(_window(y1 - y0, x1 - x0, sigma))
        for j, rows in enumerate(s.token_groups):
            for y in range(s.height):
                for x in range(s.width):
                    push = float(windows[j, y, x]) - sum(float(windows[i, y, x]) for i in range(K) if i != j)
                    p = y * s.width + x
                    scale = weaken if push == 0 else 1.0
                    out[f, :, p, rows] = logits[f, :, p, rows] * scale + strengthen * peak * push
    return out


@pytest.mark.parametrize("name", ["halves", "overlapping", "moving", "three-columns-with-gaps"])
def test_guidance_edits_logits_as_the_paper_does(name: str) -> None:
    from maestro.attention.guidance import guided_logits

    layout = LAYOUTS[name]
    h, w = 5, 8
    s = site(layout, h, w, step=0)
    q, k, v = qkv(layout.num_frames, h, w, seed=7)
    hook = _mosaic(layout, guidance_steps="6", strengthen="0.5", weaken="0.05", sigma="1/3")
    expected = _guided_logits_plainly(layout, q, k, s, 0.5, 0.05, 1 / 3)
    multiplier, push = hook.guidance(h, w, s.frames, s.token_groups, ROWS, q.device)
    got = guided_logits(q, k, s.frames, multiplier, push, 0.5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # non-source rows are never touched
    source = torch.zeros(ROWS, dtype=torch.bool)
    for g in s.token_groups:
        source[g] = True
    plain_logits = (q @ k.transpose(-1, -2)).float() * DIM**-0.5
    assert torch.equal(got[..., ~source], plain_logits[..., ~source])
    # and the hook's output is softmax(edited logits) v
    out = hook(q, k, v, s)
    torch.testing.assert_close(out, torch.softmax(expected, dim=-1) @ v, rtol=1e-5, atol=1e-5)


def test_guidance_peak_is_taken_per_video() -> None:
    layout = LAYOUTS["halves"]
    h, w = 3, 4
    s = site(layout, h, w, step=0)
    q, k, v = qkv(layout.num_frames, h, w, seed=8)
    hook = AttentionMosaic(layout)
    one = hook(q, k, v, s)
    two = hook(torch.cat([q, 3 * q]), torch.cat([k, k]), torch.cat([v, v]), s)
    torch.testing.assert_close(two[: layout.num_frames], one, rtol=1e-6, atol=1e-6)


def test_guidance_window_matches_trailblazer_sampling() -> None:
    from maestro.attention.guidance import gaussian_window

    for rows, cols in [(1, 1), (2, 5), (7, 4), (20, 32)]:
        torch.testing.assert_close(gaussian_window(rows, cols, 1 / 3), torch.tensor(_window(rows, cols, 1 / 3)))


# -- contract, options, registration --------------------------------------------------------------------------------
def test_source_count_must_match_the_layout() -> None:
    layout = LAYOUTS["halves"]
    hook = AttentionMosaic(layout, guidance_steps=0)
    q, k, v = qkv(3, 2, 2)
    bad = AttentionSite("x", 2, 2, 3, 10, 20, token_groups(3, N, ROWS))
    with pytest.raises(UsageError, match="2 sources"):
        hook(q, k, v, bad)
    with pytest.raises(ValueError, match="latent grid"):
        hook(q, k, v, site(layout, 3, 2))


@pytest.mark.parametrize(
    "options",
    [{"guidance_steps": "-1"}, {"guidance_steps": "six"}, {"strengthen": "lots"}, {"sigma": "0"},
     {"shared_tokens": "some"}, {"background": "blue"}],
)
def test_bad_options_are_usage_errors(options: dict[str, str]) -> None:
    with pytest.raises(UsageError, match=f"attention hook 'mosaic': option {next(iter(options))}="):
        _mosaic(LAYOUTS["halves"], **options)


def _mosaic(layout: Layout, **options: str) -> AttentionMosaic:
    """The hook as a run builds it: the user's strings validated by its declared options."""
    from maestro.plugins import Plugins

    return Plugins().load(entry_points=False).registry.get("attention_hook", "mosaic").build(options, layout=layout)


def test_options_from_strings() -> None:
    hook = _mosaic(LAYOUTS["halves"], guidance_steps="3", strengthen="0.25", weaken="0.1", sigma="0.5",
                   shared_tokens="false", background="ALL")
    assert (hook.guidance_steps, hook.strengthen, hook.weaken, hook.sigma) == (3, 0.25, 0.1, 0.5)
    assert (hook.shared_tokens, hook.background) == ("none", "all")


def test_registered_with_every_option_declared() -> None:
    import inspect

    from maestro.plugins import Plugins

    spec = Plugins().load(entry_points=False).registry.get("attention_hook", "mosaic")
    factory = spec.load()
    assert factory is AttentionMosaic
    params = set(inspect.signature(AttentionMosaic).parameters) - {"layout"}
    assert params == set(spec.options)
    hook = factory(layout=LAYOUTS["halves"], **{"guidance_steps": "2", "shared_tokens": "start"})
    assert hook.guidance_steps == 2 and hook.shared_tokens == "start"


def test_registering_imports_no_torch() -> None:
    code = "import sys, maestro.attention.builtins; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_full_context_of_sources_needs_background_all() -> None:
    layout = still([(0, 0, 0.5, 1), (0.5, 0, 1, 0.5)], frames=1)  # the bottom right is background
    q, k, v = qkv(1, 2, 2)
    full = AttentionSite("x", 2, 2, 1, 10, 20, (slice(0, 40), slice(40, 77)))
    with pytest.raises(UsageError, match="background=all"):
        AttentionMosaic(layout, guidance_steps=0)(q, k, v, full)
    out = AttentionMosaic(layout, guidance_steps=0, background="all")(q, k, v, full)
    assert torch.isfinite(out).all()


def test_masks_made_under_inference_mode_still_serve_autograd() -> None:
    layout = LAYOUTS["moving"]
    s = site(layout, 3, 4)
    hook = AttentionMosaic(layout, guidance_steps=0)
    q, k, v = qkv(layout.num_frames, 3, 4)
    with torch.inference_mode():
        hook(q, k, v, s)
    q = q.clone().requires_grad_()
    hook(q, k, v, s).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_guidance_supports_autograd_and_matches_the_in_place_path() -> None:
    layout = LAYOUTS["overlapping"]
    s = site(layout, 4, 5, step=0)
    hook = AttentionMosaic(layout)
    q, k, v = qkv(layout.num_frames, 4, 5, seed=9)
    with torch.no_grad():
        fast = hook(q, k, v, s)
    q = q.clone().requires_grad_()
    out = hook(q, k, v, s)
    out.sum().backward()
    torch.testing.assert_close(out.detach(), fast, rtol=1e-6, atol=1e-6)
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_a_window_of_frames_uses_its_place_in_the_layout() -> None:
    """Backbones that denoise long videos in windows may give the site a `frame_offset` (not in the core site yet)."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class WindowSite(AttentionSite):
        frame_offset: int = 0

    layout = LAYOUTS["moving"]
    h, w = 4, 10
    whole = site(layout, h, w)
    q, k, v = qkv(layout.num_frames, h, w, seed=10)
    hook = AttentionMosaic(layout, guidance_steps=0)
    expected = hook(q, k, v, whole)
    window = WindowSite("test.attn2", h, w, 2, 10, 20, whole.token_groups, True, frame_offset=2)
    assert torch.equal(hook(q[2:], k[2:], v[2:], window), expected[2:])
    guided = AttentionMosaic(layout)
    m_whole, p_whole = guided.guidance(h, w, 4, whole.token_groups, ROWS, "cpu")
    m_window, p_window = guided.guidance(h, w, 2, whole.token_groups, ROWS, "cpu", first_frame=2)
    assert torch.equal(m_window, m_whole[2:]) and torch.equal(p_window, p_whole[2:])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_keeps_regions_exact(dtype: torch.dtype) -> None:
    layout = LAYOUTS["grid2x2"]
    h, w = 4, 6
    s = site(layout, h, w)
    q, k, v = (t.to(dtype) for t in qkv(layout.num_frames, h, w, seed=11))
    for steps in (0, 20):  # mosaic, then guidance
        hook = AttentionMosaic(layout, guidance_steps=steps)
        base = hook(q, k, v, s)
        assert base.dtype == dtype and torch.isfinite(base).all()
    hook = AttentionMosaic(layout, guidance_steps=0)
    k2 = k.clone()
    k2[:, :, s.token_groups[3]] += 1
    changed = (hook(q, k2, v, s) != hook(q, k, v, s)).any(dim=1).any(dim=-1)
    assert not changed[owners(layout, h, w, 1) != 3].any()
