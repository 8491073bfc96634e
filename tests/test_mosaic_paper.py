"""The mosaic's profile=paper against the released code's own layer (tests/data/paper_hook_reference.pt, made by
tests/data/paper_hook_make_reference.py from kuai-lab/eaai25_complex_A2V on tiny random weights): guidance and mosaic
phases, LR and TD, two 5:8 grids and the unconditional pass, to 1e-5 in float32 (the issue asks 1e-4, but the
released code's half-precision roundings alone move this output by about 5e-5: benchmarks/mosaic_paper.py). Plus what
profile=paper refuses and how it generalises, and that profile=maestro is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from einops import rearrange

from maestro.attention.hookpoint import AttentionSite, reads_replaced_rows
from maestro.attention.regions import allowed_rows, query_rows
from maestro.condition.splice import token_groups
from maestro.errors import UsageError
from maestro.types import Layout

DATA = Path(__file__).parent / "data"
REF = torch.load(DATA / "paper_hook_reference.pt", weights_only=True)
FRAMES, HEADS, TOKENS = REF["frames"], REF["heads"], REF["tokens"]
ROWS = int(REF["context"].shape[1])
GROUPS = token_groups(2, TOKENS, ROWS)
GRIDS = ("10x16", "5x8")
BOXES = {"LR": [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)],  # the LR and TD planners' boxes
         "TD": [(0.0, 0.0, 1.0, 0.4), (0.0, 0.4, 1.0, 1.0)]}
STEP = {"guidance": 0, "mosaic": 10}  # guidance_steps is 6, as the paper's step_ctrl
TOLERANCE = 1e-5  # float32 noise here is ~1e-7; the half-precision roundings are ~5e-5 (see the module docstring)


def still(boxes, frames: int = FRAMES) -> Layout:
    return Layout(boxes=[[tuple(b)] * frames for b in boxes], labels=[f"s{i}" for i in range(len(boxes))])


def mosaic(layout: Layout, **options: str):
    """The hook as a run builds it: the user's strings validated by its declared options."""
    from maestro.plugins import Plugins

    return Plugins().load(entry_points=False).registry.get("attention_hook", "mosaic").build(options, layout=layout)


@pytest.fixture(scope="module")
def layer():
    """Maestro's own cross-attention layer with the reference's weights (the same parameter names)."""
    from maestro_videocrafter.attention import CrossAttention

    weights = REF["weights"]
    query_dim, context_dim = weights["to_q.weight"].shape[1], weights["to_k.weight"].shape[1]
    out = CrossAttention(query_dim, context_dim, heads=HEADS, dim_head=weights["to_q.weight"].shape[0] // HEADS)
    out.load_state_dict(weights)
    return out.eval()


def hooked(layer, hook, grid: str, phase: str, replaced: bool = True) -> torch.Tensor:
    """The layer's output with `hook` at its hook point, k and v carrying the replaced rows as the backbone appends
    them (the empty prompt's rows at each token group, through the same to_k / to_v, after the context's rows)."""
    height, width = map(int, grid.split("x"))
    x, context, uc = REF[f"x/{grid}"], REF["context"], REF["uc"]
    split = lambda t: rearrange(t, "b n (h d) -> b h n d", h=HEADS)  # noqa: E731
    conditional = phase != "unconditional"
    source = context if conditional else uc
    q, k, v = split(layer.to_q(x)), split(layer.to_k(source)), split(layer.to_v(source))
    rows = None
    if conditional and replaced:
        empty = torch.cat([uc[:, g] for g in GROUPS], dim=1)
        k, v = torch.cat([k, split(layer.to_k(empty))], dim=2), torch.cat([v, split(layer.to_v(empty))], dim=2)
        rows = tuple(slice(ROWS + i * TOKENS, ROWS + (i + 1) * TOKENS) for i in range(len(GROUPS)))
    site = AttentionSite(layer="paper.attn2", height=height, width=width, frames=FRAMES,
                         step=STEP.get(phase, 0), num_steps=50, token_groups=GROUPS, conditional=conditional,
                         replaced_rows=rows)
    out = hook(q, k, v, site)
    return layer.to_out(rearrange(out, "b h n d -> b n (h d)"))


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("pos", ["LR", "TD"])
@pytest.mark.parametrize("phase", ["guidance", "mosaic"])
def test_paper_profile_reproduces_the_released_layer(layer, phase: str, pos: str, grid: str) -> None:
    hook = mosaic(still(BOXES[pos]), profile="paper")
    with torch.no_grad():
        out = hooked(layer, hook, grid, phase)
    expected = REF[f"{phase}/{pos}/{grid}"]
    assert (out - expected).abs().max().item() < TOLERANCE
    # The reference tells the profiles apart: Maestro's own rules give another output.
    with torch.no_grad():
        ours = hooked(layer, mosaic(still(BOXES[pos])), grid, phase, replaced=False)
    assert (ours - expected).abs().max().item() > 1e-3


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("profile", ["paper", "maestro"])
def test_unconditional_pass_is_the_released_plain_attention(layer, profile: str, grid: str) -> None:
    hook = mosaic(still(BOXES["LR"]), profile=profile)
    with torch.no_grad():
        out = hooked(layer, hook, grid, "unconditional")
    assert (out - REF[f"unconditional/{grid}"]).abs().max().item() < TOLERANCE


def test_the_tolerance_sees_the_half_precision_roundings(layer) -> None:
    from maestro.attention.guidance import PaperGuidanceMaps

    class Float32Maps(PaperGuidanceMaps):
        half = False

    hook = mosaic(still(BOXES["LR"]), profile="paper")
    hook.paper_guidance = Float32Maps(hook.layout, hook.sigma, hook.weaken)
    with torch.no_grad():
        out = hooked(layer, hook, "10x16", "guidance")
    assert (out - REF["guidance/LR/10x16"]).abs().max().item() > 2 * TOLERANCE


def test_paper_guidance_with_gradients_matches_without(layer) -> None:
    hook = mosaic(still(BOXES["LR"]), profile="paper")
    with torch.no_grad():
        expected = hooked(layer, hook, "5x8", "guidance")
    out = hooked(layer, hook, "5x8", "guidance")  # the layer's weights want gradients: the out-of-place path
    assert out.requires_grad
    assert (out.detach() - expected).abs().max().item() < 1e-6


def test_profile_maestro_is_the_default_and_reads_no_replaced_rows(layer) -> None:
    layout = still(BOXES["TD"])
    default, explicit, paper = mosaic(layout), mosaic(layout, profile="maestro"), mosaic(layout, profile="paper")
    assert not reads_replaced_rows(default) and not reads_replaced_rows(explicit) and reads_replaced_rows(paper)
    with torch.no_grad():
        for phase in ("guidance", "mosaic"):
            assert torch.equal(hooked(layer, default, "10x16", phase, replaced=False),
                               hooked(layer, explicit, "10x16", phase, replaced=False))


def test_paper_profile_without_the_replaced_rows_says_which_option_to_set(layer) -> None:
    hook = mosaic(still(BOXES["LR"]), profile="paper")
    for phase in ("guidance", "mosaic"):
        with pytest.raises(UsageError, match="videocrafter2 profile=paper"):
            hooked(layer, hook, "5x8", phase, replaced=False)


def test_paper_profile_refuses_a_moving_layout() -> None:
    moving = Layout(boxes=[[(0.1 * f, 0.0, 0.1 * f + 0.4, 0.5) for f in range(3)], [(0.5, 0.5, 1.0, 1.0)] * 3],
                    labels=["a", "b"])
    with pytest.raises(UsageError, match="profile=paper.*layout moves"):
        mosaic(moving, profile="paper")
    assert mosaic(moving).profile == "maestro"


def test_a_bad_profile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="option profile="):
        mosaic(still(BOXES["LR"]), profile="papers")


def test_paper_regions_truncate_and_give_the_leftover_row_to_the_bottom() -> None:
    # TD at 3 rows: the released code's int(0.4·3) = 1 top row and last int(0.6·3) = 1 row leave row 1 to nobody
    # (it crashes there); the paper profile's truncated edges give it to the bottom source.
    rows = query_rows(still(BOXES["TD"], 1), 3, 2, 1, GROUPS, ROWS, truncate=True)[0]
    reads_bottom = rows[:, GROUPS[1]].all(dim=1)
    assert reads_bottom.tolist() == [False, False, True, True, True, True]
    # LR at an odd width: left = columns < w // 2, as its split (Maestro's nearest edge puts 4 of 7 on the left).
    lr = query_rows(still(BOXES["LR"], 1), 1, 7, 1, GROUPS, ROWS, truncate=True)[0]
    assert lr[:, GROUPS[0]].all(dim=1).tolist() == [True] * 3 + [False] * 4
    nearest = query_rows(still(BOXES["LR"], 1), 1, 7, 1, GROUPS, ROWS)[0]
    assert nearest[:, GROUPS[0]].all(dim=1).tolist() == [True] * 4 + [False] * 3


def test_paper_rows_for_k_sources() -> None:
    # Every region reads its own rows, the non-source rows and the empty prompt's rows under groups 2..K — never
    # those under group 1 (the released code overwrites rows 1..N with the region's source) nor other sources' rows.
    groups = token_groups(3, 4, 20)
    replaced = (slice(20, 24), slice(24, 28), slice(28, 32))
    allowed = allowed_rows(groups, 32, replaced=replaced)
    empty = [0, *range(13, 20), *range(24, 32)]
    for k, g in enumerate(groups):
        assert torch.nonzero(allowed[k]).flatten().tolist() == sorted(empty + list(range(g.start, g.stop)))
    assert torch.nonzero(allowed[-1]).flatten().tolist() == empty  # the background: the same, with no source
    assert torch.equal(allowed_rows(groups, 20), allowed_rows(groups, 20, replaced=None))


def test_info_shows_the_profile_option(maestro) -> None:
    result = maestro("info", "mosaic")
    assert result.code == 0
    assert "profile" in result.out and "paper" in result.out


def test_paper_mosaic_for_three_sources_reads_what_the_rule_says() -> None:
    # A still grid of 3 sources: region 0 is blind to sources 1 and 2 and to the empty prompt's rows under group 1,
    # and reads the empty prompt's rows under groups 2 and 3 (the generalised rule); both phases run.
    layout = still([(0, 0, 0.5, 0.5), (0.5, 0, 1, 0.5), (0, 0.5, 1, 1)], frames=2)
    hook = mosaic(layout, profile="paper")
    groups = token_groups(3, TOKENS, ROWS)
    replaced = tuple(slice(ROWS + i * TOKENS, ROWS + (i + 1) * TOKENS) for i in range(3))
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, HEADS, 4 * 6, 16, generator=g)
    k, v = (torch.randn(2, HEADS, ROWS + 3 * TOKENS, 16, generator=g) for _ in range(2))
    site = AttentionSite(layer="x", height=4, width=6, frames=2, step=10, num_steps=50, token_groups=groups,
                         replaced_rows=replaced)
    region0 = layout.at(4, 6, 0, truncate=True).reshape(-1) == 0
    base = hook(q, k, v, site)
    for rows, seen in ((groups[1], False), (groups[2], False), (replaced[0], False), (replaced[1], True),
                       (replaced[2], True)):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, rows] += 1.0
        v2[:, :, rows] += 1.0
        changed = (hook(q, k2, v2, site) - base)[:, :, region0].abs().max().item() > 1e-3
        assert changed == seen, rows
    assert torch.isfinite(hook(q, k, v, AttentionSite(layer="x", height=4, width=6, frames=2, step=0, num_steps=50,
                                                      token_groups=groups, replaced_rows=replaced))).all()
