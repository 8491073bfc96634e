"""ImageBind audio–vision similarity per (source, region crop), where the ImageBind weights are on this machine.

Each source is embedded from its stem (ImageBind's 2 s log-mel clips, averaged, as the `imagebind` audio encoder
prepares them); each region from FRAMES frames of its crop spread over the video (ImageBind's image transform:
shorter side to 224, centre crop, CLIP normalisation), averaged. The score is the cosine of the two embeddings.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from maestro.eval.run_folder import RunFolder

WEIGHTS_ID = "imagebind_huge"  # the weights of the `imagebind` audio encoder
FRAMES = 8
SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def imagebind_matrix(run: "RunFolder") -> dict[str, Any]:
    """{"matrix": K×K cosines, "weights": path}, or {"matrix": None, "reason": why not} without weights/packages."""
    from maestro import weights

    path = weights.local_path(WEIGHTS_ID)
    if path is None:
        return {"matrix": None, "reason": f"the ImageBind weights are not on this machine "
                                          f"(`maestro weights fetch {WEIGHTS_ID}`)"}
    try:
        model = load_model(str(path))
        matrix = similarity_matrix(run, model)
    except ImportError as exc:
        return {"matrix": None, "reason": f"needs the imagebind package and the maestro-imagebind plugin ({exc})"}
    except WeightsUnusable as exc:
        return {"matrix": None, "reason": str(exc)}
    return {"matrix": [[round(v, 4) for v in row] for row in matrix], "weights": str(path)}


class WeightsUnusable(Exception):
    """The weights file is there but is not ImageBind (huge)'s state dict."""


@functools.lru_cache(maxsize=1)
def load_model(path: str) -> Any:
    """The full ImageBind (huge) with the weights at `path`, once per process. The file is read first, so a broken
    one fails before 1.2 billion parameters are allocated."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise WeightsUnusable(f"could not read {path} as a state dict ({exc}); fetch it again") from exc
    model = imagebind_models().imagebind_huge(pretrained=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsUnusable(f"{path} is not ImageBind (huge)'s state dict ({str(exc)[:200]})") from exc
    return model.eval().to("cuda" if torch.cuda.is_available() else "cpu")


def imagebind_models() -> Any:
    """`imagebind.models.imagebind_model`. The package imports pytorchvideo, which still looks for torchvision's
    `functional_tensor` under its old name: point that name at the renamed module first."""
    import sys
    import warnings

    import torchvision.transforms._functional_tensor as functional_tensor

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package imports the deprecated pkg_resources
        from imagebind.models import imagebind_model
    return imagebind_model


def similarity_matrix(run: "RunFolder", model: Any) -> list[list[float]]:
    """Cosine similarity of every source's audio embedding with every region's vision embedding."""
    import torch
    import torch.nn.functional as F
    from maestro_imagebind.features import audio_clips

    from maestro.eval.run_folder import ANALYSIS_RATE
    from maestro.types import Audio

    device = next(model.parameters()).device
    picks, frames = _rgb_frames(run.path / "video.mp4", FRAMES)
    with torch.no_grad():
        sounds, sights = [], []
        for samples, label in zip(run.stems, run.labels):
            mels, _ = audio_clips(Audio(torch.from_numpy(samples).unsqueeze(0), ANALYSIS_RATE, label=label))
            sounds.append(model({"audio": mels.unsqueeze(0).to(device)})["audio"][0])
        for boxes in run.boxes:  # each picked frame cropped to the region's box in that frame
            crops = [_image(f[y0:y1, x0:x1]) for f, (x0, y0, x1, y1) in zip(frames, (boxes[i] for i in picks))]
            crops = torch.stack(crops).unsqueeze(0).to(device)
            sights.append(model({"vision": crops})["vision"][0])
        audio = F.normalize(torch.stack(sounds).float(), dim=-1)
        vision = F.normalize(torch.stack(sights).float(), dim=-1)
        return (audio @ vision.T).cpu().tolist()


def _rgb_frames(file: Path, count: int) -> tuple[list[int], list[np.ndarray]]:
    """The indices of `count` frames spread evenly over the video and those RGB frames [H, W, 3] (the file was
    already decoded once: it reads)."""
    import av

    with av.open(str(file)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])]
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return picks.tolist(), [frames[i] for i in picks]


def _image(rgb: np.ndarray) -> "torch.Tensor":
    """ImageBind's vision transform of one crop: shorter side to SIZE (bicubic), centre crop, CLIP normalisation."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().unsqueeze(0) / 255.0
    h, w = x.shape[-2:]
    scale = SIZE / min(h, w)
    size = (max(SIZE, round(h * scale)), max(SIZE, round(w * scale)))
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)[0]
    top, left = (x.shape[1] - SIZE) // 2, (x.shape[2] - SIZE) // 2
    x = x[:, top:top + SIZE, left:left + SIZE]
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (x - mean) / std
