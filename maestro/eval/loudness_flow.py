"""The region metric: the correlation of how much a source's loudness changes with how much its region moves.

Value t of the audio curve is |RMS(t) − RMS(t−1)|, the RMS taken with one hop per video frame (librosa), so it spans
the same interval as the flow value t (frame t−1 to t). Optical flow measures change, not level: a region that stays
bright while its source stays loud does not move, so the loudness envelope itself follows motion poorly, its change
well. docs/reproducing.md gives the numbers behind this choice.
"""

from __future__ import annotations

import numpy as np

from maestro.eval.run_folder import ANALYSIS_RATE


def loudness_change_curve(samples: np.ndarray, fps: float, frames: int) -> np.ndarray:
    """|ΔRMS| of mono `samples` (ANALYSIS_RATE) per video frame, `frames` long (value 0 is 0: nothing before it)."""
    import librosa

    hop = max(1, int(round(ANALYSIS_RATE / fps)))
    rms = librosa.feature.rms(y=samples, hop_length=hop)[0][:frames].astype(np.float64)
    rms = np.pad(rms, (0, frames - len(rms)))
    return np.abs(np.diff(rms, prepend=rms[:1]))
