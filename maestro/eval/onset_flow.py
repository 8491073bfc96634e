"""A dense companion of AV-Align: the correlation of a source's onset strength with a region's flow curve.

These are the two curves AV-Align takes its peaks from, compared at every frame instead of at a handful of peaks.
The onset strength is computed with one hop per video frame, so that value t measures how much the spectrum changed
from frame t-1 to frame t: the same interval as the flow value t.
"""

from __future__ import annotations

import numpy as np

from maestro.eval.run_folder import ANALYSIS_RATE


def onset_curve(samples: np.ndarray, fps: float, frames: int) -> np.ndarray:
    """Onset strength of mono `samples` (ANALYSIS_RATE), one value per video frame, `frames` long."""
    import librosa

    hop = max(1, int(round(ANALYSIS_RATE / fps)))
    curve = librosa.onset.onset_strength(y=samples, sr=ANALYSIS_RATE, hop_length=hop)[:frames]
    return np.pad(curve, (0, frames - len(curve))).astype(np.float64)
