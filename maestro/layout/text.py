"""Label text for pictures and overlays: one font, and labels rendered once as small stamps to paste onto frames."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import ImageFont


@lru_cache(maxsize=8)
def font(size: int) -> "ImageFont.FreeTypeFont | ImageFont.ImageFont":
    """Pillow's built-in font at `size` px (older Pillow without a scalable default: its fixed bitmap font)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def label_stamp(text: str, color: tuple[int, int, int], size: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """`text` in white on a dark plate edged with `color`: (rgb uint8 `[h, w, 3]`, alpha `[h, w, 1]` in [0, 1])."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    face = font(size)
    pad = max(2, size // 4)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=face)
    w, h = right - left + 2 * pad + 3, bottom - top + 2 * pad
    rgba = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(rgba)
    draw.rectangle((0, 0, w - 1, h - 1), fill=(10, 10, 14, 190))
    draw.rectangle((0, 0, 2, h - 1), fill=(*color, 255))  # a colour tab on the left ties label to region
    draw.text((pad + 3 - left, pad - top), text, font=face, fill=(255, 255, 255, 255))
    array = torch.from_numpy(np.asarray(rgba).copy())
    return array[..., :3].contiguous(), array[..., 3:].float() / 255.0
