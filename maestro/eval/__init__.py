"""`maestro eval`: does each sound move its own region? Weight-free scores of a finished run folder.

For every (source, region) pair the source's stem is compared with the motion inside that region's crop of the video:

* `av_align`  — AV-Align (TempoTokens, Yariv et al., AAAI 2024): audio onsets against optical-flow peaks, IoU within
  ±1 frame. Peaks are sparse on short clips, so its matrix is noisy.
* `loudness_flow` — the Pearson correlation, over every frame, of how much the source's loudness changes (|ΔRMS|)
  with the region's mean flow magnitude: dense, and the metric of the region matrix (docs/reproducing.md says why).
* `onset_flow` — the same with the onset strength, the curve AV-Align takes its onsets from.
* `imagebind` — ImageBind audio–vision similarity per (source, region crop), only where the weights are present.

`evaluate(folder)` returns the report that `maestro eval` writes to `eval.json` beside the manifest.
"""

from maestro.eval.report import evaluate, write_report

__all__ = ["evaluate", "write_report"]
