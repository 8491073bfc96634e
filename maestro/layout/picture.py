"""A picture of a layout (`layout.png`): each source's region in its colour, with its label; moving layouts show a
few frames side by side (first, middle, last)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from maestro.layout.palette import source_color
from maestro.layout.text import font
from maestro.types import Layout

BACKGROUND = (22, 22, 28)
PAGE = (12, 12, 16)


def is_static(layout: Layout) -> bool:
    """True when no box moves."""
    return all(len(set(track)) <= 1 for track in layout.boxes)


def key_frames(layout: Layout) -> list[int]:
    """The frames worth showing: just the first for a static layout, else first, middle and last."""
    last = max(0, layout.num_frames - 1)
    if is_static(layout) or last == 0:
        return [0]
    return sorted({0, last // 2, last})


def render_layout_png(
    layout: Layout, path: str | Path, width: int = 512, height: int = 320, frames: Sequence[int] | None = None,
    fps: float | None = None,
) -> Path:
    """Write a PNG of `layout` at `path` (panels of `width`×`height`, one per frame in `frames`, default
    `key_frames(layout)`); `fps`, when given, adds each panel's time to its title. Returns the path."""
    from PIL import Image

    path = Path(path)
    chosen = list(frames) if frames is not None else key_frames(layout)
    if not chosen:
        raise ValueError("frames must name at least one frame")
    gap, title = 12, max(18, height // 14)
    page = Image.new("RGB", (len(chosen) * width + (len(chosen) + 1) * gap, height + title + 2 * gap), PAGE)
    for i, frame in enumerate(chosen):
        panel = _panel(layout, frame, width, height)
        x = gap + i * (width + gap)
        page.paste(panel, (x, gap + title))
        _title(page, _caption(layout, frame, fps, len(chosen)), x, gap, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, format="PNG")
    return path


def _caption(layout: Layout, frame: int, fps: float | None, panels: int) -> str:
    name = f"layout {layout.planner}" if layout.planner else "layout"
    if panels == 1 and is_static(layout):
        return name
    when = f" (t = {frame / fps:.2f} s)" if fps else ""
    return f"{name}: frame {frame + 1} of {layout.num_frames}{when}"


def _title(page, text: str, x: int, y: int, size: int) -> None:
    from PIL import ImageDraw

    ImageDraw.Draw(page).text((x, y), text, font=font(max(10, size - 6)), fill=(220, 220, 228))


def _panel(layout: Layout, frame: int, width: int, height: int):
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    owner = layout.at(height, width, frame)
    palette = torch.tensor([_muted(source_color(k)) for k in range(layout.num_sources)] + [BACKGROUND],
                           dtype=torch.uint8)
    pixels = palette[torch.where(owner < 0, layout.num_sources, owner)]
    image = Image.fromarray(np.ascontiguousarray(pixels.numpy()))
    draw = ImageDraw.Draw(image)
    boxes = [layout.pixel_box(k, frame, height, width) for k in range(layout.num_sources)]
    order = sorted(range(layout.num_sources), key=lambda k: -(boxes[k][2] - boxes[k][0]) * (boxes[k][3] - boxes[k][1]))
    face = font(max(11, height // 18))
    line = max(2, round(min(height, width) / 120))
    for k in order:  # big boxes first: small ones (which own their pixels) end up on top
        x0, y0, x1, y1 = boxes[k]
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=source_color(k), width=line)
    for k in order:
        x0, y0, x1, y1 = boxes[k]
        label = layout.labels[k] if k < len(layout.labels) else f"source {k}"
        tx, ty = x0 + line + 6, y0 + line + 4
        box = draw.textbbox((tx, ty), label, font=face)
        draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(10, 10, 14))
        draw.text((tx, ty), label, font=face, fill=source_color(k, saturation=0.35, value=1.0))
    return image


def _muted(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The region fill: the source colour darkened, so outlines and labels stand out."""
    return tuple(int(c * 0.45 + BACKGROUND[i] * 0.55) for i, c in enumerate(rgb))  # type: ignore[return-value]
