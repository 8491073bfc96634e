"""`profile=paper`: what the paper's released code (kuai-lab/eaai25_complex_A2V) does differently from Maestro's
default on this backbone, and the rows the paper's mosaic reads.

- Frames → clips (`scripts/evaluation/inference_2object.py`): each clip's CIM tokens are repeated 8 times and the
  first `frames` of them condition the frames, so clip i conditions frames 8i..8i+7 whatever the fps (Maestro's
  default: the clip covering the frame's start time f / fps). When a source has too few clips for that
  (8 · clips < frames) the released code's `except` gives every full chunk of 8 frames clip 0, and the frames after
  the last full chunk keep the empty prompt's rows.
- Video length: the released code makes `--frames` frames (16) whatever the audio's length, in one window.
- Replaced rows (`lvdm/modules/attention.py`, the mosaic phase): each region attends to the empty prompt with its
  source's rows put in, so it also reads the empty prompt's rows that the other sources' tokens replaced in the
  shared context. The backbone appends them to k and v for hooks that ask (`reads_replaced_rows`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PROFILES = ("maestro", "paper")
FRAMES_PER_CLIP = 8  # the released code's repeat_interleave(8): a clip's tokens condition 8 frames


def paper_clip_of_frame(num_clips: int, num_frames: int) -> list[int | None]:
    """The clip that conditions each frame in the released code (None: the frame keeps the empty prompt's rows)."""
    if FRAMES_PER_CLIP * num_clips >= num_frames:  # its `try`: text_emb[:frames] fills every frame
        return [f // FRAMES_PER_CLIP for f in range(num_frames)]
    full = num_frames // FRAMES_PER_CLIP * FRAMES_PER_CLIP  # its `except`: text_emb[:8] for each full chunk of 8
    return [0 if f < full else None for f in range(num_frames)]


def paper_clip_rows(clips: "torch.Tensor", empty_rows: "torch.Tensor", num_frames: int) -> "torch.Tensor":
    """One source's rows per frame `[num_frames, Q, C]` from its CIM tokens `clips[clips, Q, C]`, as the released
    code splices them; `empty_rows[Q, C]` are the empty prompt's rows at the source's position (the fallback)."""
    rows = empty_rows.to(clips.dtype).unsqueeze(0).repeat(num_frames, 1, 1)
    for frame, clip in enumerate(paper_clip_of_frame(int(clips.shape[0]), num_frames)):
        if clip is not None:
            rows[frame] = clips[clip]
    return rows


def replaced_rows_context(empty: "torch.Tensor", token_groups: tuple[slice, ...]) -> "torch.Tensor":
    """The empty prompt's rows `empty[..., 77, C]` at each token group's positions, in group order `[..., R, C]`."""
    import torch

    return torch.cat([empty[..., group, :] for group in token_groups], dim=-2)
