"""What the backbone's differences under profile=paper change, measured end to end on the tiny reference.

tests/data/paper_reference.pt holds the paper's released code run on a tiny random VideoCrafter2 (12 frames of
80×128, 4 DDIM steps with step_ctrl 2, CFG 12, eta 1; see tests/data/paper_make_reference.py). For each backbone row
of docs/attention.md ("Paper profile: paper vs maestro") this runs `videocrafter2` profile=paper with the mosaic's
profile=paper (LR and TD), as tests/test_videocrafter_paper.py does, then again with only that difference undone, and
prints the largest |Δ| of the final latents (in brackets: % of the latents' max |value|) and of the frames (uint8
levels). The first lines check profile=paper against the released code. The same is printed again at 8 steps with 1
guidance step, about the paper's share of 6 in 50 (Maestro against itself there, profile=paper being the released
code). No timing: the numbers do not depend on the machine.

    python benchmarks/videocrafter_paper.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from maestro.attention.regions import MosaicMask  # noqa: E402
from maestro.components import RunContext  # noqa: E402
from test_videocrafter_paper import FPS, FRAMES, REF, registry, still, tokens  # noqa: E402  (the tests')

LONGER = (8, 1)  # steps, guidance steps


def mosaic(pos: str, guidance_steps: int):
    spec = registry().get("attention_hook", "mosaic")
    return spec.build({"profile": "paper", "guidance_steps": str(guidance_steps)}, layout=still(pos))


class RegionsWithoutReplacedRows:
    """The mosaic's profile=paper, except that in its mosaic steps each region reads only its rows and the rows no
    source uses (Maestro's rule), not the empty prompt's rows the backbone carried."""

    reads_replaced_rows = True

    def __init__(self, pos: str, guidance_steps: int) -> None:
        self.paper = mosaic(pos, guidance_steps)
        self.masks = MosaicMask(still(pos), self.paper.shared_tokens, self.paper.background, truncate=True)

    def __call__(self, q, k, v, site):
        if self.paper.phase(site) != "mosaic":
            return self.paper(q, k, v, site)
        own = site.replaced_rows[0].start
        mask = self.masks(site.height, site.width, site.frames, site.token_groups, own, q.shape[0] // site.frames,
                          q.device, q.dtype, site.frame_offset)
        return torch.nn.functional.scaled_dot_product_attention(q, k[..., :own, :], v[..., :own, :], attn_mask=mask)


def run(backbone, cond, hook, pos):
    video = backbone.generate(cond, still(pos), hook, RunContext(seed=REF["noise_seed"]))
    return backbone.last_latents.clone(), video.frames


def delta(a, b) -> tuple[float, int]:
    (la, fa), (lb, fb) = a, b
    return (la - lb).abs().max().item(), (fa.int() - fb.int()).abs().max().item()


def cell(d: tuple[float, int], scale: float) -> str:
    return f"{d[0]:.2g} ({100 * d[0] / scale:.2g} %), {d[1]} levels" if d[0] else "0"


def main() -> None:
    from maestro_videocrafter.testing import write_paper_checkpoint

    with TemporaryDirectory() as tmp:
        options = write_paper_checkpoint(Path(tmp) / "paper.ckpt", seed=REF["seed"])
        build = registry().get("backbone", "videocrafter2").build
        paper, maestro = build(options), build({**options, "profile": "maestro"})
        toks = tokens(REF["tokens"])
        cond = paper.condition(toks, FRAMES, FPS, RunContext(seed=0))
        maestro_cond = maestro.condition(toks, FRAMES, FPS, RunContext(seed=0))
        differ = [f for f in range(FRAMES) if not torch.equal(cond.per_frame[f], maestro_cond.per_frame[f])]
        print(f"context: profile=paper vs the released splice: max |Δ| "
              f"{(cond.per_frame - REF['context']).abs().max().item():.1e}; vs profile=maestro's mapping: frames "
              f"{differ} differ, max |Δ| {(cond.per_frame - maestro_cond.per_frame).abs().max().item():.2g}")
        longer = build({**options, "steps": str(LONGER[0])})
        settings = [(paper, REF["step_ctrl"], f"{REF['steps']} steps, step_ctrl {REF['step_ctrl']} (the reference)"),
                    (longer, LONGER[1], f"{LONGER[0]} steps, step_ctrl {LONGER[1]}")]
        cells = {"mapping": [], "rows": []}
        with torch.no_grad():
            for backbone, guidance, _ in settings:
                for pos in ("LR", "TD"):
                    base = run(backbone, cond, mosaic(pos, guidance), pos)
                    if backbone is paper:
                        d = delta(base, (REF[pos]["latents"], REF[pos]["frames"]))
                        print(f"{pos}: profile=paper vs the released code: latents max |Δ| {d[0]:.1e}, "
                              f"frames {d[1]} levels")
                    scale = base[0].abs().max().item()
                    variants = {"mapping": run(backbone, maestro_cond, mosaic(pos, guidance), pos),
                                "rows": run(backbone, cond, RegionsWithoutReplacedRows(pos, guidance), pos)}
                    for key, other in variants.items():
                        cells[key].append(cell(delta(base, other), scale))
        print()
        print("| profile=paper with this undone | " + " | ".join(f"{pos}, {label}" for _, _, label in settings
                                                                 for pos in ("LR", "TD")) + " |")
        print("| --- |" + " --- |" * 2 * len(settings))
        for key, label in (("mapping", "frame→clip: each frame takes the clip covering f/fps (profile=maestro's)"),
                           ("rows", "replaced rows: the mosaic's regions do not read them")):
            print(f"| {label} | " + " | ".join(cells[key]) + " |")


if __name__ == "__main__":
    main()
