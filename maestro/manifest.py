"""manifest.json: what ran, with which options, seed, weights, timings and warnings — enough to reproduce a run."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from maestro import __version__
from maestro.types import Audio, Layout, Stems, Video


def stem_file(index: int, label: str) -> str:
    """Where stem `index` (1-based) goes, relative to the output folder; the manifest names the same path."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in label.strip())
    return f"stems/{index:02d}_{cleaned[:60] or 'source'}.wav"


def build_manifest(pipeline: Any, inputs: list[Audio], stems: Stems, layout: Layout, video: Video,
                   hook_used: bool) -> dict[str, Any]:
    from maestro.weights import cached_sha256

    plan, ctx, backbone = pipeline.plan, pipeline.ctx, pipeline.backbone
    components = {kind: plan.describe(kind) for kind in plan.specs if kind != "attention_hook" or hook_used}
    manifest: dict[str, Any] = {
        "maestro": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "python": platform.python_version(),
        "torch": _torch_version(),
        "device": ctx.device,
        "seed": ctx.seed,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(pipeline.options).items()
                    if k != "inputs"},
        "inputs": [{"path": str(p), "sha256": cached_sha256(Path(p)), "sample_rate": a.sample_rate,
                    "channels": a.channels, "duration": round(a.duration, 4)} for p, a in zip(plan.inputs, inputs)],
        "components": components,
        # Which components computed what the paper's released code computes ("paper") and which Maestro's way.
        "profile": {kind: c["options"]["profile"] for kind, c in components.items() if "profile" in c["options"]},
        "stems": [{"label": s.label, "file": stem_file(i, s.label)} for i, s in enumerate(stems.sources, start=1)],
        "layout": {"planner": layout.planner or plan.specs["layout_planner"].name, "labels": layout.labels,
                   "first_frame": [list(layout.box(k, 0)) for k in range(layout.num_sources)],
                   "moving": any(len(set(b)) > 1 for b in layout.boxes)},
        "video": {"frames": video.num_frames, "fps": video.fps, "height": int(video.frames.shape[1]),
                  "width": int(video.frames.shape[2]), "duration": round(video.duration, 4)},
        "attention_hook": components.get("attention_hook"),
        "weights": ctx.used_weights,
        "timings": pipeline.timings,
        "cache": pipeline.cache_hits,
        "warnings": ctx.warnings,
    }
    if manifest["layout"]["moving"]:  # every frame's boxes, [source][frame], so that `maestro eval` can follow them
        manifest["layout"]["boxes"] = [[list(box) for box in per_source] for per_source in layout.boxes]
    if hook_used and getattr(backbone, "hook_layers", None):
        # Every layer that offers the hook point, with how often it called the hook (0 would be a bug).
        calls = getattr(backbone, "last_hook_calls", {})
        manifest["attention_hook_calls"] = {layer: calls.get(layer, 0) for layer in backbone.hook_layers}
    return manifest


def _torch_version() -> str:
    import torch

    return torch.__version__
