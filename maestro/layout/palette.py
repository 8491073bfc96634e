"""One colour per source, shared by the layout picture, the overlay and the storyboard preview."""

from __future__ import annotations

import colorsys

GOLDEN = 0.618033988749895  # hue step that keeps successive sources far apart on the colour wheel
FIRST_HUE = 0.58  # source 0 starts blue-ish


def source_hue(index: int) -> float:
    """Hue in [0, 1) of source `index`."""
    return (FIRST_HUE + index * GOLDEN) % 1.0


def source_color(index: int, saturation: float = 0.65, value: float = 0.95) -> tuple[int, int, int]:
    """RGB (0–255) of source `index`."""
    r, g, b = colorsys.hsv_to_rgb(source_hue(index), saturation, value)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))
