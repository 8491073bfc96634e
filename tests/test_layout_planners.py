"""Built-in layout planners: LR, TD, grid and auto."""

import math

import pytest
import torch

from maestro.components import RunContext
from maestro.errors import UsageError
from maestro.layout.planners import Auto, Grid, LeftRight, TopDown, grid_boxes
from maestro.types import Audio, Stems

SR = 8000


def stems_of(*channels: torch.Tensor, labels=None) -> Stems:
    """Stems from `[C, N]` tensors (all the same shape)."""
    labels = labels or [f"s{k}" for k in range(len(channels))]
    sources = [Audio(x.float(), SR, label=label) for x, label in zip(channels, labels)]
    return Stems(sources, Audio(sum(x.float() for x in channels), SR))


def noise(seconds: float = 4.0, seed: int = 0, amplitude: float = 0.3) -> torch.Tensor:
    return amplitude * torch.randn(int(seconds * SR), generator=torch.Generator().manual_seed(seed))


def panned(mono: torch.Tensor, pan) -> torch.Tensor:
    """Constant-power pan; `pan` in [-1, 1] (a number or a per-sample tensor)."""
    angle = (torch.as_tensor(pan, dtype=torch.float32) + 1) * math.pi / 4
    return torch.stack([mono * torch.cos(angle), mono * torch.sin(angle)])


def assert_no_overlap(layout, frame):
    spans = sorted((layout.box(k, frame)[0], layout.box(k, frame)[2]) for k in range(layout.num_sources))
    for (_, right), (left, _) in zip(spans, spans[1:]):
        assert right <= left + 1e-6


def test_left_right_and_top_down():
    stems = stems_of(panned(noise(), 0), panned(noise(seed=1), 0), labels=["a", "b"])
    lr = LeftRight().plan(stems, 5, RunContext())
    assert lr.boxes == [[(0.0, 0.0, 0.5, 1.0)] * 5, [(0.5, 0.0, 1.0, 1.0)] * 5]
    assert lr.labels == ["a", "b"] and lr.planner == "LR"
    td = TopDown().plan(stems, 3, RunContext())
    assert td.boxes == [[(0.0, 0.0, 1.0, 0.4)] * 3, [(0.0, 0.4, 1.0, 1.0)] * 3]
    assert (td.at(10, 4)[:4] == 0).all() and (td.at(10, 4)[4:] == 1).all()


@pytest.mark.parametrize("planner", [LeftRight(), TopDown()])
def test_two_source_planners_refuse_three(planner):
    assert planner.max_sources == 2
    stems = stems_of(*(panned(noise(seed=k), 0) for k in range(3)))
    with pytest.raises(UsageError, match=f"layout {planner.name} places 2 sources, got 3: use --layout grid or auto"):
        planner.plan(stems, 4, RunContext())


def test_one_source_fills_the_frame():
    stems = stems_of(panned(noise(), 0))
    for planner in (LeftRight(), TopDown(), Grid()):
        assert planner.plan(stems, 2, RunContext()).boxes == [[(0.0, 0.0, 1.0, 1.0)] * 2]


@pytest.mark.parametrize("count", range(1, 11))
def test_grid_tiles_without_overlap(count):
    boxes = grid_boxes(count)
    rows = math.isqrt(count)
    cols = math.ceil(count / rows)
    assert len(boxes) == count
    assert len({round(b[1], 6) for b in boxes}) == rows
    for x0, y0, x1, y1 in boxes:
        assert x1 - x0 == pytest.approx(1 / cols) and y1 - y0 == pytest.approx(1 / rows)
    stems = stems_of(*(panned(noise(0.1, seed=k), 0) for k in range(count)))
    layout = Grid().plan(stems, 1, RunContext())
    owners = layout.at(60, 60)
    for k in range(count):  # each source owns exactly its cell: nothing overlaps
        x0, y0, x1, y1 = layout.pixel_box(k, 0, 60, 60)
        assert (owners == k).sum() == (x1 - x0) * (y1 - y0)


def test_grid_centres_a_short_last_row():
    boxes = grid_boxes(5)  # 2 rows × 3 columns, 2 boxes in the last row
    assert boxes[3][0] == pytest.approx(1 / 6) and boxes[4][2] == pytest.approx(5 / 6)
    assert boxes[3][1] == pytest.approx(0.5)


def test_auto_follows_panning_and_loudness():
    left = panned(noise(seed=0), -0.9)
    right = panned(noise(seed=1, amplitude=0.03), 0.9)  # 20 dB quieter
    layout = Auto().plan(stems_of(left, right, labels=["l", "r"]), 16, RunContext())
    assert layout.planner == "auto" and layout.labels == ["l", "r"]
    for f in range(16):
        lx0, _, lx1, _ = layout.box(0, f)
        rx0, _, rx1, _ = layout.box(1, f)
        assert (lx0 + lx1) / 2 < 0.4 and (rx0 + rx1) / 2 > 0.6
        assert lx1 - lx0 > 1.5 * (rx1 - rx0)  # the louder source gets the wider box
        assert_no_overlap(layout, f)


def test_auto_boxes_move_with_the_pan_over_time():
    mono = noise(seconds=8.0)
    sweep = torch.linspace(-1, 1, mono.shape[0])
    layout = Auto(smooth="0.5").plan(stems_of(panned(mono, sweep), panned(noise(8.0, seed=1), 0.0)), 32, RunContext())
    centres = [(layout.box(0, f)[0] + layout.box(0, f)[2]) / 2 for f in range(32)]
    assert centres[0] < 0.3 and centres[-1] > 0.7
    assert all(b >= a - 0.02 for a, b in zip(centres, centres[1:]))  # slides right, no jumps back
    assert max(abs(b - a) for a, b in zip(centres, centres[1:])) < 0.15


def test_auto_keeps_many_sources_apart_and_inside():
    pans = [-0.8, -0.3, 0.0, 0.4, 0.9]
    stems = stems_of(*(panned(noise(seed=k), p) for k, p in enumerate(pans)))
    layout = Auto().plan(stems, 8, RunContext())
    for f in range(8):
        assert_no_overlap(layout, f)
        order = sorted(range(5), key=lambda k: layout.box(k, f)[0])
        assert order == [0, 1, 2, 3, 4]


def test_auto_silent_stretch_holds_position():
    x = noise(seconds=8.0)
    x[len(x) // 2 :] = 0  # the source stops half way
    layout = Auto().plan(stems_of(panned(x, 0.8), panned(noise(8.0, seed=1), -0.8)), 16, RunContext())
    first_half = (layout.box(0, 2)[0] + layout.box(0, 2)[2]) / 2
    last = (layout.box(0, 15)[0] + layout.box(0, 15)[2]) / 2
    assert first_half > 0.6 and last > 0.6  # still on the right, not snapped to the centre


def test_auto_on_mono_falls_back_to_a_grid_by_brightness():
    t = torch.arange(2 * SR) / SR
    low = torch.sin(2 * math.pi * 150 * t)[None]
    high = torch.sin(2 * math.pi * 2500 * t)[None]
    mid = torch.sin(2 * math.pi * 700 * t)[None]
    ctx = RunContext()
    layout = Auto().plan(stems_of(low, high, mid, labels=["low", "high", "mid"]), 4, ctx)
    assert any("mono" in w and "grid" in w for w in ctx.warnings)
    cells = grid_boxes(3)
    assert [layout.box(k, 0) for k in range(3)] == [cells[2], cells[0], cells[1]]  # brightest first
    # Dual mono (identical channels) has no panning either.
    ctx = RunContext()
    Auto().plan(stems_of(low.repeat(2, 1), high.repeat(2, 1)), 4, ctx)
    assert ctx.warnings


def test_auto_options_are_checked():
    assert Auto(smooth="2", min_width="0.1", max_width="0.4", fill="0.8").fill == 0.8
    with pytest.raises(UsageError):
        Auto(min_width="0.5", max_width="0.2")
    with pytest.raises(UsageError):
        Auto(smooth="soon")


def test_registered_specs_build_and_declare_options():
    from maestro.layout.builtins import register_layout_planners

    specs = []
    register_layout_planners(specs.append)
    by_name = {s.name: s for s in specs}
    assert set(by_name) == {"LR", "TD", "grid", "auto", "file"}
    assert by_name["auto"].build({"smooth": "0.5"}).smooth == 0.5
    for name in ("LR", "TD", "grid"):
        assert by_name[name].build().name == name
    assert "path" in by_name["file"].options


def test_no_sources_is_a_usage_error():
    with pytest.raises(UsageError):
        Grid().plan(Stems([], Audio(torch.zeros(1, 10), SR)), 2, RunContext())


def test_auto_accepts_a_mono_stem_beside_stereo_ones():
    stems = [Audio(panned(noise(seed=0), -0.9), SR, "l"), Audio(noise(seed=1)[None], SR, "mono")]
    layout = Auto().plan(Stems(stems, Audio(stems[0].samples, SR)), 6, RunContext())
    assert layout.box(0, 3)[0] < layout.box(1, 3)[0]  # the panned one left of the centred one
