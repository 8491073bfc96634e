"""The layout picture (layout.png) and the region overlay drawn onto video frames."""

import pytest
import torch
from PIL import Image

from maestro.layout.overlay import overlay_regions
from maestro.layout.palette import source_color
from maestro.layout.picture import BACKGROUND, key_frames, render_layout_png
from maestro.types import Layout


def static_layout(frames: int = 4) -> Layout:
    return Layout(boxes=[[(0.0, 0.0, 0.5, 1.0)] * frames, [(0.5, 0.0, 1.0, 1.0)] * frames,
                         [(0.6, 0.6, 0.9, 0.9)] * frames], labels=["thunder", "dog", "bird"], planner="grid")


def moving_layout(frames: int = 9) -> Layout:
    track = [(0.1 * f / (frames - 1), 0.0, 0.5 + 0.1 * f / (frames - 1), 0.5) for f in range(frames)]
    return Layout(boxes=[track, [(0.0, 0.5, 1.0, 1.0)] * frames], labels=["a", "b"], planner="file")


def test_key_frames():
    assert key_frames(static_layout()) == [0]
    assert key_frames(moving_layout(9)) == [0, 4, 8]


def test_static_picture_has_one_panel_with_each_region_coloured(tmp_path):
    path = render_layout_png(static_layout(), tmp_path / "out" / "layout.png", width=200, height=100)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(path).convert("RGB")
    width, height = image.size
    assert width < 2 * 200 and height > 100  # one panel plus margins and a title
    # Sample the middle of each region (panel starts after the margin and the title strip).
    x0, y0 = (width - 200) // 2, height - 100 - (width - 200) // 2
    colours = [image.getpixel((x0 + x, y0 + y)) for x, y in ((25, 75), (140, 30), (170, 80))]
    assert len(set(colours)) == 3  # three sources, three colours
    assert all(c != BACKGROUND for c in colours)


def test_moving_picture_shows_three_frames(tmp_path):
    path = render_layout_png(moving_layout(), tmp_path / "layout.png", width=160, height=90, fps=8)
    width, _ = Image.open(path).size
    assert width > 3 * 160
    path = render_layout_png(moving_layout(), tmp_path / "two.png", width=160, height=90, frames=[0, 8])
    assert 2 * 160 < Image.open(path).size[0] < 3 * 160


def test_overlay_outlines_each_box_in_its_colour_and_keeps_the_input():
    frames = torch.full((3, 100, 200, 3), 50, dtype=torch.uint8)
    layout = static_layout(3)
    out = overlay_regions(frames, layout)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    assert (frames == 50).all()  # the input is not changed
    for k in range(3):
        x0, y0, x1, y1 = layout.pixel_box(k, 0, 100, 200)
        assert tuple(out[1, y1 - 1, (x0 + x1) // 2].tolist()) == source_color(k)  # bottom edge
    assert (out[:, 50, 60] == 50).all()  # inside a box, away from edges and labels: untouched
    # Labels are drawn: the top-left corner of the first box changed beyond its outline.
    assert (out[0, 5:15, 5:40] != 50).any()


def test_overlay_follows_moving_boxes_and_rejects_bad_frames():
    layout = moving_layout(3)
    out = overlay_regions(torch.zeros(3, 40, 100, 3, dtype=torch.uint8), layout)
    for f in range(3):
        x0, y0, x1, y1 = layout.pixel_box(0, f, 40, 100)
        assert tuple(out[f, y0 + 12, x0].tolist()) == source_color(0)  # left edge, where that frame's box is
    with pytest.raises(ValueError):
        overlay_regions(torch.zeros(3, 40, 100, dtype=torch.uint8), layout)
