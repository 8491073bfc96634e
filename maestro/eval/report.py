"""One run folder in, one report out: the region matrices, region accuracy and whole-video AV-Align."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from maestro.errors import ComponentUnavailableError
from maestro.eval.av_align import audio_peaks, av_align, video_peaks
from maestro.eval.imagebind import imagebind_matrix
from maestro.eval.loudness_flow import loudness_change_curve
from maestro.eval.motion import correlation, flow_curve
from maestro.eval.onset_flow import onset_curve
from maestro.eval.run_folder import read_run_folder

REGION_METRIC = "loudness_flow"  # docs/reproducing.md: of the three, the one that finds the sources
REPORT_FILE = "eval.json"


def evaluate(folder: Path) -> dict[str, Any]:
    _check_packages()
    run = read_run_folder(Path(folder))
    height, width = run.frames.shape[1:]
    frames = len(run.frames)
    whole = [(0, 0, width, height)] * frames
    motion = [flow_curve(run.frames, boxes) for boxes in run.boxes]

    onsets = [audio_peaks(s) for s in run.stems]
    peaks = [video_peaks(m, run.fps) for m in motion]
    align = [[av_align(o, p, run.fps) for p in peaks] for o in onsets]
    matrices = {"av_align": align}
    for name, curve in (("loudness_flow", loudness_change_curve), ("onset_flow", onset_curve)):
        audio = [curve(s, run.fps, frames) for s in run.stems]
        matrices[name] = [[correlation(a, m) for m in motion] for a in audio]

    whole_motion = flow_curve(run.frames, whole)
    report: dict[str, Any] = {
        "folder": str(run.path),
        "sources": run.labels,
        "regions": {"metric": REGION_METRIC, "matrix": _rounded(matrices[REGION_METRIC]),
                    "accuracy": region_accuracy(matrices[REGION_METRIC])},
        "av_align": _round(av_align(audio_peaks(run.soundtrack), video_peaks(whole_motion, run.fps), run.fps)),
        "loudness_flow": _round(correlation(loudness_change_curve(run.soundtrack, run.fps, frames), whole_motion)),
        "matrices": {name: {"matrix": _rounded(m), "accuracy": region_accuracy(m)} for name, m in matrices.items()},
        "imagebind": imagebind_matrix(run),
        "peaks": {"onsets": [len(o) for o in onsets], "motion": [len(p) for p in peaks]},
        "video": {"frames": frames, "fps": run.fps, "height": height, "width": width},
        "notes": run.notes,
    }
    if report["imagebind"].get("matrix") is not None:
        report["imagebind"]["accuracy"] = region_accuracy(report["imagebind"]["matrix"])
    return report


def _check_packages() -> None:
    import importlib.util

    missing = [name for name in ("cv2", "librosa") if importlib.util.find_spec(name) is None]
    if missing:
        raise ComponentUnavailableError(f"maestro eval needs {' and '.join(missing)}: pip install 'maestro[eval]'")


def region_accuracy(matrix: list[list[float | None]]) -> float:
    """Share of sources (rows) whose own region (the diagonal) scores strictly highest; None never wins."""
    hits = 0
    for k, row in enumerate(matrix):
        own = row[k]
        others = [v for j, v in enumerate(row) if j != k and v is not None]
        if own is not None and all(own > v for v in others):
            hits += 1
    return round(hits / len(matrix), 4) if matrix else 0.0


def write_report(folder: Path, report: dict[str, Any]) -> Path:
    """Write `eval.json` beside the manifest atomically (temp file in the same folder, then os.replace)."""
    target = Path(folder) / REPORT_FILE
    fd, temp = tempfile.mkstemp(prefix=".eval-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def _round(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _rounded(matrix: list[list[float | None]]) -> list[list[float | None]]:
    return [[_round(v) for v in row] for row in matrix]


__all__ = ["evaluate", "region_accuracy", "write_report"]
