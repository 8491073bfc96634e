"""`maestro eval`: does each sound move its own region? Weight-free scores of a finished run folder.

For every (source, region) pair the source's stem is compared with the motion inside that region's crop of the video:

* `av_align`  — AV-Align (TempoTokens, Yariv et al., AAAI 2024): audio onsets against optical-flow peaks, IoU within
  ±1 frame. Peaks are sparse on short clips, so its matrix is noisy.
* `onset_flow` — the Pearson correlation of the two curves AV-Align takes its peaks from (onset strength and mean
  flow magnitude, one value per video frame): it uses every frame, so it is the metric of the region matrix.
* `imagebind` — ImageBind audio–vision similarity per (source, region crop), only where the weights are present.

`evaluate(folder)` returns the report that `maestro eval` writes to `eval.json` beside the manifest.
"""

from maestro.eval.report import evaluate, write_report

__all__ = ["evaluate", "write_report"]
