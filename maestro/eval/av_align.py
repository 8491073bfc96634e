"""AV-Align (Yariv et al., "Diverse and Aligned Audio-to-Video Generation via Text-to-Video Model Adaptation",
AAAI 2024): the intersection over union of audio onsets and motion peaks, where an onset within one frame of a motion
peak counts as matched.

Onsets are librosa's (onset strength, then its peak picker) at librosa's default rate and hop, as in the reference;
motion peaks are the strict local maxima of the flow curve (scipy's `find_peaks`).
"""

from __future__ import annotations

import numpy as np

from maestro.eval.run_folder import ANALYSIS_RATE


def audio_peaks(samples: np.ndarray) -> np.ndarray:
    """Onset times in seconds of mono `samples` at ANALYSIS_RATE."""
    import librosa

    envelope = librosa.onset.onset_strength(y=samples, sr=ANALYSIS_RATE)
    frames = librosa.onset.onset_detect(onset_envelope=envelope, sr=ANALYSIS_RATE)
    return librosa.frames_to_time(frames, sr=ANALYSIS_RATE)


def video_peaks(flow: np.ndarray, fps: float) -> np.ndarray:
    """Times in seconds of the local maxima of a per-frame flow curve."""
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(flow)
    return peaks / fps


def av_align(onsets: np.ndarray, peaks: np.ndarray, fps: float) -> float | None:
    """IoU of onsets and motion peaks within ±1 frame; None when there is neither an onset nor a peak."""
    matched = sum(1 for t in onsets if np.any(np.abs(peaks - t) < 1.0 / fps))
    union = len(onsets) + len(peaks) - matched
    return matched / union if union else None
