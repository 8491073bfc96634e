"""Draw the layout onto video frames: each source's box outlined in its colour, with its label (an overlay video)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from maestro.layout.palette import source_color
from maestro.layout.text import label_stamp
from maestro.types import Layout

if TYPE_CHECKING:
    import torch


def overlay_regions(frames: "torch.Tensor", layout: Layout) -> "torch.Tensor":
    """A copy of `frames` (uint8 `[T, H, W, 3]`) with every box outlined and labelled; frame t uses the layout's frame
    t (its last frame past its end). Smaller boxes are drawn last, so they stay on top, as in the overlap rule."""
    import torch

    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {tuple(frames.shape)} {frames.dtype}")
    out = frames.clone()
    count, height, width = layout.num_sources, int(frames.shape[1]), int(frames.shape[2])
    if count == 0 or layout.num_frames == 0:
        return out
    thickness = max(1, round(min(height, width) / 160))
    colors = [torch.tensor(source_color(k), dtype=torch.uint8) for k in range(count)]
    stamps = [label_stamp(layout.labels[k] if k < len(layout.labels) else f"source {k}", source_color(k),
                          max(9, height // 24)) for k in range(count)]
    for t in range(out.shape[0]):
        boxes = [layout.pixel_box(k, t, height, width) for k in range(count)]
        for k in sorted(range(count), key=lambda k: -(boxes[k][2] - boxes[k][0]) * (boxes[k][3] - boxes[k][1])):
            x0, y0, x1, y1 = boxes[k]
            frame, c, d = out[t], colors[k], thickness
            frame[y0 : min(y0 + d, y1), x0:x1] = c
            frame[max(y1 - d, y0) : y1, x0:x1] = c
            frame[y0:y1, x0 : min(x0 + d, x1)] = c
            frame[y0:y1, max(x1 - d, x0) : x1] = c
            _paste(frame, stamps[k], x0 + d + 2, y0 + d + 2, x1, y1)
    return out


def _paste(
    frame: "torch.Tensor", stamp: tuple["torch.Tensor", "torch.Tensor"], x: int, y: int, x1: int, y1: int
) -> None:
    """Alpha-blend `stamp` at (x, y), cut to the box's right and bottom edges."""
    rgb, alpha = stamp
    h, w = min(rgb.shape[0], y1 - y), min(rgb.shape[1], x1 - x)
    if h <= 0 or w <= 0:
        return
    a = alpha[:h, :w]
    region = frame[y : y + h, x : x + w].float()
    frame[y : y + h, x : x + w] = (region * (1 - a) + rgb[:h, :w].float() * a).round().to(frame.dtype)
