"""Motion in a region: the mean optical-flow magnitude (OpenCV Farnebäck) between consecutive frames of its crop,
and how well a per-frame audio curve follows it."""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Farnebäck parameters of the AV-Align reference: pyramid scale 0.5, 3 levels, window 15, 3 iterations,
# polynomial neighbourhood 5 with sigma 1.2.
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)


def flow_curve(frames: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """Per frame t, the mean flow magnitude from frame t-1 to t inside frame t's box (x0, y0, x1, y1) of grey
    `frames`; `boxes` has one box per frame (a still region repeats it).

    Frame 0 has no predecessor and repeats frame 1's value, as AV-Align does, so the curve has one value per frame.
    """
    import cv2

    values = []
    for t in range(1, len(frames)):
        x0, y0, x1, y1 = boxes[t]  # both frames cropped to frame t's box: the flow of what is in the region now
        prev, curr = (np.ascontiguousarray(f[y0:y1, x0:x1]) for f in (frames[t - 1], frames[t]))
        flow = cv2.calcOpticalFlowFarneback(prev, curr, None, *FARNEBACK)
        values.append(float(cv2.magnitude(flow[..., 0], flow[..., 1]).mean()))
    return np.asarray(values[:1] + values, dtype=np.float64)


def correlation(audio: np.ndarray, motion: np.ndarray) -> float:
    """Pearson correlation of a per-frame audio curve with a flow curve, over frames 1… (frame 0's flow is a copy,
    not a measurement); 0 where either is constant (a silent source, a still region: no evidence either way)."""
    n = min(len(audio), len(motion))
    a, b = audio[1:n], motion[1:n]
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
