"""How the `videocrafter2` backbone makes videos longer than one window: the `long`, `partitions` and `lookahead`
options, checked once in the factory and resolved per video. Imports nothing heavy (the manifest hook uses it).

- `windows`: independent windows of `frames` frames, each from fresh noise (a cut at every window boundary).
- `fifo`: FIFO-Diffusion's diagonal denoising (`maestro_videocrafter.fifo`), one stream for the whole video.
- `auto` (default): `fifo` when the video is longer than `frames`, else `windows` (one window: the same thing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from maestro.errors import UsageError
from maestro.options import as_bool, as_int

LONG_MODES = ("auto", "fifo", "windows")


@dataclass(frozen=True)
class LongVideo:
    mode: str = "auto"
    partitions: int | None = None  # None: auto, steps ÷ frames rounded up (the paper's n = 4 at 64 = 4 × 16 steps)
    lookahead: bool = True  # the paper's lookahead denoising (its default)

    @classmethod
    def from_options(cls, long: Any = "auto", partitions: Any = "auto", lookahead: Any = True) -> "LongVideo":
        mode = str(long).strip().lower()
        if mode not in LONG_MODES:
            raise UsageError(f"option long must be one of {', '.join(LONG_MODES)}, not {long!r}")
        parts = None
        if partitions is not None and str(partitions).strip().lower() != "auto":
            parts = as_int("partitions", partitions, minimum=1)
        return cls(mode, parts, as_bool("lookahead", lookahead))

    def uses_fifo(self, num_frames: int, frames: int) -> bool:
        return self.mode == "fifo" or (self.mode == "auto" and num_frames > frames)

    def num_partitions(self, steps: int, frames: int) -> int:
        return self.partitions if self.partitions is not None else max(1, math.ceil(steps / frames))

    def check(self, steps: int, frames: int, timesteps: int) -> None:
        """FIFO's queue has partitions × frames noise levels, one DDIM step each: they must fit the schedule."""
        if self.mode == "windows":
            return
        levels = self.num_partitions(steps, frames) * frames
        if levels > timesteps:
            raise UsageError(f"long=fifo needs partitions × frames = {levels} DDIM steps, more than the model's "
                             f"{timesteps} timesteps: use fewer partitions or frames")

    def record(self, num_frames: int, steps: int, frames: int) -> dict[str, Any]:
        """What a video of `num_frames` frames was made with (for the manifest)."""
        if not self.uses_fifo(num_frames, frames):
            return {"long": "windows", "windows": math.ceil(num_frames / frames), "steps": steps}
        n = self.num_partitions(steps, frames)
        return {"long": "fifo", "partitions": n, "lookahead": self.lookahead, "steps": n * frames}


def manifest_entry(options: Mapping[str, Any], num_frames: int) -> dict[str, Any]:
    """The backbone's long-video settings for a run's manifest, from the options it was given."""
    from maestro_videocrafter.backbone import DEFAULT_FRAMES, DEFAULT_STEPS

    long = LongVideo.from_options(options.get("long", "auto"), options.get("partitions"),
                                  options.get("lookahead", True))
    steps = as_int("steps", options.get("steps", DEFAULT_STEPS), minimum=1)
    frames = as_int("frames", options.get("frames", DEFAULT_FRAMES), minimum=1)
    return long.record(num_frames, steps, frames)
