"""Writes tests/data/paper_hook_reference.pt: the paper's spatial cross-attention layer, run on tiny random weights.

Not a test and not run by the suite; kept so that the reference can be made again. It needs a checkout of
kuai-lab/eaai25_complex_A2V (commit in PAPER_COMMIT) and imports its code from there, unchanged:
`lvdm/modules/attention.py` `CrossAttention.efficient_forward` (which imports `TrailBlazer/Utils.py` `dd_core`),
`TrailBlazer/Utils.py` `keyframed_bbox` and the bundle `TrailBlazer/MultiSubjects.yaml`. Nothing of it is copied here.
The adapter below is ours:
- `xformers.ops.memory_efficient_attention` (a CUDA kernel) is replaced by softmax(q kᵀ/√d) v on CPU, inputs [B, N, D];
- `cv2` (imported by its utils/utils.py, unused by the layer) is a blank module when it is not installed;
- `PYTHONBREAKPOINT=0` silences the `breakpoint()` calls left in the layer;
- the layer is called as its sampler calls it (lvdm/models/samplers/ddim.py): guidance steps with
  `use_injection=True, pos=...`; mosaic steps with `step=True` and — the one fix the paper profile assumes — `pos`,
  which the released sampler forgets; the unconditional pass with `e_t_uc=True` on the empty prompt.

One layer: query_dim 32, context_dim 64, 2 heads of 64 (its LR branch hard-codes 64), seeded random weights; T = 4
frames (so the guidance's T + 1 chunks of ⌊T·heads/(T+1)⌋ = 1 row leave 3 (frame·head) rows unmapped) at the 5:8
grids 10×16 and 5×8; a per-frame empty prompt `uc` [T, 77, 64] and a shared context = `uc` with rows 1..20 replaced by
two sources' 10 tokens (as its inference_2object.py splices them).

    python tests/data/paper_hook_make_reference.py /path/to/eaai25_complex_A2V
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import torch

PAPER_COMMIT = "5572c2b88b3cc9a1bae64785e2e3a4882e869e38"
OUT = Path(__file__).with_name("paper_hook_reference.pt")
QUERY_DIM, CONTEXT_DIM, HEADS, DIM_HEAD = 32, 64, 2, 64
FRAMES, ROWS, TOKENS = 4, 77, 10
GRIDS = ((10, 16), (5, 8))
SEED = 0


def cpu_memory_efficient_attention(q, k, v, attn_bias=None, op=None):
    """The stand-in for xformers' kernel: plain attention over [B, N, D]."""
    assert attn_bias is None
    return (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1) @ v


def import_released(checkout: Path):
    """The released CrossAttention, keyframed_bbox and bundle, imported from `checkout` unchanged."""
    os.environ["PYTHONBREAKPOINT"] = "0"
    ops = types.ModuleType("xformers.ops")
    ops.memory_efficient_attention = cpu_memory_efficient_attention
    xformers = types.ModuleType("xformers")
    xformers.ops = ops
    sys.modules.update({"xformers": xformers, "xformers.ops": ops})
    if importlib.util.find_spec("cv2") is None:
        sys.modules["cv2"] = types.ModuleType("cv2")
    sys.path.insert(0, str(checkout))
    import yaml

    from lvdm.modules.attention import CrossAttention
    from TrailBlazer.Utils import keyframed_bbox

    bundle = yaml.safe_load((checkout / "TrailBlazer" / "MultiSubjects.yaml").read_text())
    return CrossAttention, keyframed_bbox, bundle


def main(checkout: Path) -> None:
    CrossAttention, keyframed_bbox, bundle = import_released(checkout)
    torch.manual_seed(SEED)
    layer = CrossAttention(QUERY_DIM, CONTEXT_DIM, heads=HEADS, dim_head=DIM_HEAD).eval()
    layer.forward = layer.efficient_forward  # its spatial path (set by its __init__ when xformers imports)
    bbox_per_frame = keyframed_bbox(bundle, FRAMES)  # T + 1 boxes: only their number is read
    uc = torch.randn(FRAMES, ROWS, CONTEXT_DIM)
    context = uc.clone()
    context[:, 1:1 + 2 * TOKENS] = torch.randn(FRAMES, 2 * TOKENS, CONTEXT_DIM)
    data = {"weights": {k: v.clone() for k, v in layer.state_dict().items()}, "uc": uc, "context": context,
            "frames": FRAMES, "heads": HEADS, "tokens": TOKENS, "commit": PAPER_COMMIT}
    common = {"bundle": bundle, "bbox_per_frame": bbox_per_frame, "uc_emb_copied": uc}
    with torch.no_grad():
        for height, width in GRIDS:
            x = 2 * torch.randn(FRAMES, height * width, QUERY_DIM)
            grid = f"{height}x{width}"
            data[f"x/{grid}"] = x
            for pos in ("LR", "TD"):
                data[f"guidance/{pos}/{grid}"] = layer(x, context=context, use_injection=True, pos=pos, **common)
                data[f"mosaic/{pos}/{grid}"] = layer(x, context=context, step=True, pos=pos, **common)
            data[f"unconditional/{grid}"] = layer(x, context=uc, e_t_uc=True, **common)
    torch.save(data, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
