"""Every setting of a CIM training run, checked before anything heavy is imported. Defaults are the paper's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maestro.errors import UsageError

# The paper's train.sh: SD 2.1 (768, v-prediction) trained at 512, OpenCLIP ViT-H-14, lr 1e-5, 70k steps, fp16.
DEFAULT_SD = "stabilityai/stable-diffusion-2-1"
DEFAULT_TEXT_ENCODER = "ViT-H-14:laion2b_s32b_b79k"


@dataclass
class TrainConfig:
    data: Path
    out: Path
    sd: str = DEFAULT_SD
    text_encoder: str = DEFAULT_TEXT_ENCODER
    text_layer: str = "last"  # the paper's training embedder runs every text block ("last")
    encoder: str | None = None  # audio encoder name; None: imagebind (tiny random one with --tiny)
    encoder_options: dict[str, str] = field(default_factory=dict)
    cim_config: dict[str, Any] = field(default_factory=dict)
    init_cim: Path | None = None
    steps: int = 70_000
    batch_size: int = 1  # videos per process per micro-step (each brings 2K-1 frame/token pairs)
    lr: float = 1e-5
    weight_decay: float = 1e-2
    grad_accum: int = 1
    mixed_precision: str = "auto"
    resume: str | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    clips: int = 5  # 2 s clips per video: the paper used the first 10 s
    resolution: int = 512
    interpolate: bool = True
    train_unet_kv: bool = True
    denoise_weight: float = 0.9
    mse_weight: float = 0.1
    seed: int = 0
    cache: Path | None = None
    workers: int = 0
    tiny: bool = False

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self.out = Path(self.out)
        self.cache = Path(self.cache) if self.cache else self.out / "cache"
        if not self.data.exists():
            raise UsageError(f"--data {self.data} does not exist: give a folder of class folders or a CSV file")
        positive = {"steps": self.steps, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "checkpoint_every": self.checkpoint_every, "clips": self.clips, "resolution": self.resolution,
                    "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.lr <= 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if self.resolution % 8:
            raise UsageError(f"--resolution must be a multiple of 8 (the VAE downsamples by 8), got {self.resolution}")
        arch, _, pretrained = self.text_encoder.partition(":")
        if not self.tiny and not (arch and pretrained):
            raise UsageError(f"--text-encoder must look like ARCH:PRETRAINED (e.g. {DEFAULT_TEXT_ENCODER}), "
                             f"not {self.text_encoder!r}")
        if self.text_layer not in ("last", "penultimate"):
            raise UsageError(f"--text-layer must be last or penultimate, not {self.text_layer!r}")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise UsageError(f"--mixed-precision must be auto, no, fp16 or bf16, not {self.mixed_precision!r}")
        if self.denoise_weight < 0 or self.mse_weight < 0 or self.denoise_weight + self.mse_weight == 0:
            raise UsageError("the loss weights must be non-negative and not both zero")
        if self.init_cim is not None and not Path(self.init_cim).is_file():
            raise UsageError(f"--init-cim {self.init_cim} does not exist")

    @property
    def encoder_name(self) -> str:
        return self.encoder or ("tiny" if self.tiny else "imagebind")

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def parse_cim_config(text: str | None) -> dict[str, Any]:
    """`--cim-config` as JSON text or a .json file, with the paper's keyword names."""
    if not text:
        return {}
    raw = text.strip()
    if not raw.startswith("{"):
        path = Path(raw).expanduser()
        if not path.is_file():
            raise UsageError(f"--cim-config must be JSON text or a .json file; {raw!r} is neither")
        raw = path.read_text()
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--cim-config is not valid JSON: {exc}") from None
    allowed = {"dim", "depth", "dim_head", "heads", "num_queries", "embedding_dim", "output_dim", "ff_mult"}
    if not isinstance(values, dict) or set(values) - allowed:
        raise UsageError(f"--cim-config takes a JSON object with keys among {', '.join(sorted(allowed))}")
    return values
