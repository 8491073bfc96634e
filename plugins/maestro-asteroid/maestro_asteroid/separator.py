"""Asteroid separation models from the package dict asteroid saves (`model.serialize()`), under torch ≥ 2.6.

asteroid's own `from_pretrained(path)` calls `torch.load` with the new `weights_only=True` default and fails on
some packages, so we read the dict ourselves — tensors-only by default, full unpickling only when the user says
`trust_pickle=true` — and hand it to asteroid's `from_pretrained(dict)`, which builds the right class.
The models are mono and run at their training rate: the mixture is folded to mono, resampled to the model's rate and
the estimates back to the input's rate, length and channel count. The number of sources is the model's `n_src`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchaudio.functional as AF

from maestro.components import RunContext
from maestro.errors import UsageError, WeightsError
from maestro.options import as_bool
from maestro.types import Audio, Stems

DEFAULT_MODEL = "JorisCos/ConvTasNet_Libri2Mix_sepclean_16k"


class AsteroidSeparator:
    def __init__(self, model: str = DEFAULT_MODEL, trust_pickle: Any = False) -> None:
        self.source = model
        self.trust_pickle = as_bool("trust_pickle", trust_pickle)
        self._model: Any = None

    def model(self) -> Any:
        if self._model is None:
            self._model = load_asteroid(self.source, self.trust_pickle)
        return self._model

    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        model = self.model().to(ctx.device)
        rate = int(model.sample_rate)
        n_src = int(model.get_model_args()["n_src"])
        if sources is not None and sources > n_src:
            raise UsageError(f"this asteroid model separates {n_src} sources; --sources {sources} is too many")
        wav = mixture.mono()
        if mixture.sample_rate != rate:
            wav = AF.resample(wav, mixture.sample_rate, rate)
        with torch.no_grad():
            estimates = model(wav[None].to(ctx.device))[0].cpu()  # [n_src, time]
        if mixture.sample_rate != rate:
            estimates = AF.resample(estimates, rate, mixture.sample_rate)
        estimates = _fit(estimates, mixture.num_samples)
        labelled = [(f"source {i + 1}", e) for i, e in enumerate(estimates)]
        if sources is not None and sources < n_src:
            labelled = _merge_quietest(labelled, sources)
        return Stems([Audio(e[None].expand(mixture.channels, -1).contiguous(), mixture.sample_rate, label=label,
                            origin="asteroid") for label, e in labelled], mixture)


def load_asteroid(source: str, trust_pickle: bool = False) -> Any:
    from asteroid.models import BaseModel

    path = Path(source).expanduser()
    if not path.exists():
        if source.count("/") != 1 or source.startswith((".", "/", "~")):
            raise WeightsError(f"asteroid model file {source} does not exist")
        path = _download(source)
    try:
        # `serialize()` records torch.__version__, a str subclass: allowing it keeps the load tensors-only.
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            package = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # noqa: BLE001
        hint = "" if trust_pickle else " If you trust the file, pass --separator-opt trust_pickle=true."
        raise WeightsError(f"cannot read asteroid model package {path} ({type(exc).__name__}: {exc}).{hint}") from exc
    if not isinstance(package, dict) or not {"model_name", "model_args", "state_dict"} <= set(package):
        raise WeightsError(f"{path} is not an asteroid model package (a dict with model_name, model_args, state_dict)")
    try:
        model = BaseModel.from_pretrained(package)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"asteroid could not build {package.get('model_name')!r} from {path}: {exc}") from exc
    return model.eval()


def _download(hub_id: str) -> Path:
    from asteroid.models.base_models import cached_download

    try:
        return Path(cached_download(hub_id))
    except Exception as exc:  # noqa: BLE001 - offline or unknown id
        raise WeightsError(
            f"could not get asteroid model {hub_id!r} ({type(exc).__name__}: {exc}). Online, it downloads from the "
            f"Hugging Face hub; offline, download its pytorch_model.bin and pass --separator-opt model=PATH."
        ) from exc


def _fit(x: torch.Tensor, length: int) -> torch.Tensor:
    return x[..., :length] if x.shape[-1] >= length else torch.nn.functional.pad(x, (0, length - x.shape[-1]))


def _merge_quietest(labelled: list[tuple[str, torch.Tensor]], k: int) -> list[tuple[str, torch.Tensor]]:
    """Keep the k-1 loudest estimates (in model order) and sum the rest into the k-th."""
    order = sorted(range(len(labelled)), key=lambda i: -float(labelled[i][1].pow(2).mean()))
    keep = sorted(order[: k - 1])
    rest = [i for i in range(len(labelled)) if i not in keep]
    merged = ("+".join(labelled[i][0] for i in rest), sum(labelled[i][1] for i in rest))
    return [labelled[i] for i in keep] + [merged]
