"""What each difference of the mosaic's profile=paper changes, measured on the tiny reference of the released layer.

tests/data/paper_hook_reference.pt holds the released code's spatial cross-attention layer (kuai-lab/eaai25_complex_A2V,
tiny random weights: 2 heads of 64, T = 4 frames, 5:8 latent grids 10×16 and 5×8; see
tests/data/paper_hook_make_reference.py). For each difference listed in docs/attention.md ("Paper profile: paper vs
maestro") this prints the largest |Δ| of the layer's output between profile=paper and profile=paper with only that
difference undone (the Maestro rule in its place), and, last in each phase, between profile=paper and profile=maestro.
In brackets: |Δ| as a percentage of the largest |output| of the released layer in that case. Every profile=paper
output is also checked against the released one (the first line). No timing: the numbers do not depend on the machine.

    python benchmarks/mosaic_paper.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from maestro.attention.guidance import PaperGuidanceMaps  # noqa: E402
from maestro.attention.regions import MosaicMask  # noqa: E402
from maestro.types import Layout  # noqa: E402
from test_mosaic_paper import BOXES, GRIDS, REF, hooked, mosaic, still  # noqa: E402  (the tests' reference helpers)

CASES = [(pos, grid) for pos in ("LR", "TD") for grid in GRIDS]


class LayoutBoxes(PaperGuidanceMaps):
    """Guides with the layout's own boxes (Maestro), not the paper's LR band."""

    def __init__(self, layout: Layout, *args: float) -> None:
        super().__init__(layout, *args)
        self.boxes = [per_source[0] for per_source in layout.boxes]


class NearestCells(PaperGuidanceMaps):
    """Boxes at the nearest cell edges without a margin (Maestro's `pixel_box`), not TrailBlazer's."""

    def cells(self, box, height: int, width: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = Layout(boxes=[[box]], labels=["box"]).pixel_box(0, 0, height, width)
        return y0, y1, x0, x1


class Float32Maps(PaperGuidanceMaps):
    """Maps, differences and weaken in float32 (Maestro), not half."""

    half = False


class EveryRowMapped(PaperGuidanceMaps):
    """Every (frame·head) row gets the maps (Maestro), not only T + 1 chunks of ⌊T·heads / (T+1)⌋."""

    def chunked_rows(self, frames: int, heads: int) -> int:
        return frames * heads


def paper_with(guidance: type[PaperGuidanceMaps] | None = None, truncate: bool = True) -> Callable[[Layout], object]:
    """profile=paper with one part swapped for Maestro's."""

    def build(layout: Layout):
        hook = mosaic(layout, profile="paper")
        if guidance is not None:
            hook.paper_guidance = guidance(layout, hook.sigma, hook.weaken)
        hook.masks = MosaicMask(layout, hook.shared_tokens, hook.background, truncate=truncate)
        return hook

    return build


def maestro_without_replaced(truncate: bool) -> Callable[[Layout], object]:
    def build(layout: Layout):
        hook = mosaic(layout)
        hook.masks = MosaicMask(layout, hook.shared_tokens, hook.background, truncate=truncate)
        return hook

    return build


def main() -> None:
    from maestro_videocrafter.attention import CrossAttention

    weights = REF["weights"]
    heads = REF["heads"]
    layer = CrossAttention(weights["to_q.weight"].shape[1], weights["to_k.weight"].shape[1], heads=heads,
                           dim_head=weights["to_q.weight"].shape[0] // heads).eval()
    layer.load_state_dict(weights)
    rows = {
        "guidance": [
            ("the paper's LR guidance band 0.3–0.7 (vs the layout's boxes)", paper_with(LayoutBoxes), True),
            ("TrailBlazer's 1 % margin and truncation (vs nearest edges)", paper_with(NearestCells), True),
            ("half-precision maps and weaken (vs float32)", paper_with(Float32Maps), True),
            ("T+1 chunks, tail rows unmapped (vs every row)", paper_with(EveryRowMapped), True),
            ("all of the above: profile=paper vs profile=maestro", lambda lay: mosaic(lay), False),
        ],
        "mosaic": [
            ("regions read the empty prompt's rows under groups 2..K (vs not)", maestro_without_replaced(True), False),
            ("regions cut at int(x·size) (vs nearest edges)", paper_with(truncate=False), True),
            ("all of the above: profile=paper vs profile=maestro", lambda lay: mosaic(lay), False),
        ],
    }
    with torch.no_grad():
        worst = max((hooked(layer, mosaic(still(BOXES[pos]), profile="paper"), grid, phase)
                     - REF[f"{phase}/{pos}/{grid}"]).abs().max().item()
                    for phase in rows for pos, grid in CASES)
        print(f"profile=paper vs the released layer: max |Δ| = {worst:.1e} over every case below")
        print()
        print("| phase | profile=paper with this undone | " + " | ".join(f"{p} {g}" for p, g in CASES) + " |")
        print("| --- | --- |" + " --- |" * len(CASES))
        for phase, variants in rows.items():
            for label, build, replaced in variants:
                cells = []
                for pos, grid in CASES:
                    layout = still(BOXES[pos])
                    paper = hooked(layer, mosaic(layout, profile="paper"), grid, phase)
                    other = hooked(layer, build(layout), grid, phase, replaced=replaced)
                    scale = REF[f"{phase}/{pos}/{grid}"].abs().max().item()
                    delta = (paper - other).abs().max().item()
                    cells.append(f"{delta:.2g} ({100 * delta / scale:.2g} %)" if delta else "0")
                print(f"| {phase} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
