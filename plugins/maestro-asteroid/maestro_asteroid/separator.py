"""Asteroid separation models (ConvTasNet, DPRNNTasNet, SuDORMRF(Improved)Net, and other `BaseModel`s) for Maestro.

Loading: a model package is the dict asteroid's `model.serialize()` returns (`model_name`, `model_args`,
`state_dict`, `infos`), saved with `torch.save`. Asteroid's own `from_pretrained(path)` calls `torch.load` with the
default `weights_only=True` of torch ≥ 2.6 and fails on `infos` (it holds a `torch.torch_version.TorchVersion`), so
the package is loaded here with `weights_only=True` and exactly that harmless `str` subclass allowed; a file holding
anything else is refused (Maestro never unpickles a file that can run code). The model is built with asteroid's own
class for `model_name` and `load_state_dict`.

Separation: the mixture is resampled to the model's rate; every channel is separated on its own (the models are
mono) and the sources of channels 2.. are put in the order of channel 1's by correlation (an optimal assignment,
scipy's `linear_sum_assignment`). Long inputs go through asteroid's `LambdaOverlapAdd`: half-overlapping Hann-windowed
chunks of `segment` seconds, each chunk's sources matched to the previous chunk's on the overlap. Stems come back at
the input's rate and length.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from maestro.components import RunContext
from maestro.errors import UsageError, WeightsError
from maestro.options import as_bool, as_float, check_sources
from maestro.separate.adapt import fit_length, make_stems, mixture_tensor, reduce_to, resample
from maestro.types import Audio, Stems

DEFAULT_MODEL = "JorisCos/ConvTasNet_Libri2Mix_sepclean_16k"
DEFAULT_WEIGHTS = "asteroid-convtasnet-libri2mix-16k"  # its file's id in Maestro's weights registry
HUB_FILENAME = "pytorch_model.bin"


class AsteroidSeparator:
    """`separate(mixture, K)` → K stems from an asteroid model with `n_src` outputs (K ≤ n_src)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        weights: str | None = None,
        download: Any = False,
        sample_rate: Any = None,
        segment: Any = 20.0,
    ) -> None:
        # `model` is a hub id or a file; `weights` (a file) wins when both are given.
        self.source = str(model).strip() or DEFAULT_MODEL
        self.weights = Path(str(weights)).expanduser() if weights not in (None, "") else None
        self.download = as_bool("download", download)
        rate = sample_rate not in (None, "")
        self.sample_rate = as_float("sample_rate", sample_rate, 1000, 384_000) if rate else None
        self.segment = as_float("segment", segment, 0.0, 3600.0)
        self._model: Any = None

    # -- model ---------------------------------------------------------------------------------------------------------
    def model(self) -> Any:
        if self._model is None:
            path = self.weights or _local_file(self.source)
            if path is None and self.source == DEFAULT_MODEL:
                # Where `maestro plugins` and `maestro weights fetch` look for the default model's file.
                from maestro import weights

                path = weights.local_path(DEFAULT_WEIGHTS)
            if path is None:
                path = _cached_hub_file(self.source)
                if path is None:
                    if not self.download:
                        raise WeightsError(missing_model_message(self.source))
                    path = _download(self.source)
            package = load_package(path)
            self._model = build_model(package, self.sample_rate or _known_rate(self.source))
        return self._model

    @property
    def n_src(self) -> int:
        return model_sources(self.model())

    # -- separation ----------------------------------------------------------------------------------------------------
    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        x = mixture_tensor(mixture)
        model = self.model()
        n_src = model_sources(model)
        k = check_sources(sources, n_src)
        if k > n_src:
            raise UsageError(f"asteroid model {self.source!r} separates {n_src} sources; {k} are too many")
        rate = int(round(float(model.sample_rate)))
        device = torch.device(ctx.device or "cpu")
        model.to(device).eval()
        y = resample(x, mixture.sample_rate, rate)
        seg = 2 * int(self.segment * rate / 2) if self.segment > 0 else 0  # LambdaOverlapAdd wants an even window
        with ctx.progress(f"separating (asteroid {model.__class__.__name__})", _chunk_count(y.shape[-1], seg)) as adv:
            est = separate_channels(model, y, seg, device, adv)  # [C, n_src, n]
        # Each channel is separated on its own: put every channel's sources in the first channel's order.
        for c in range(1, est.shape[0]):
            est[c] = est[c, list(_best_permutation(est[0], est[c]))]
        stems = est.transpose(0, 1).contiguous()  # [n_src, C, n]
        stems = fit_length(resample(stems, rate, mixture.sample_rate), x.shape[-1])
        labels = [f"source {i + 1}" for i in range(n_src)]
        chosen, labels = reduce_to(list(stems), labels, k)
        return make_stems(chosen, labels, mixture, "asteroid")


# -- model package ---------------------------------------------------------------------------------------------------
def load_package(path: Path) -> dict[str, Any]:
    """The serialised model dict, loaded with `weights_only=True` (see the module docstring)."""
    if not path.is_file():
        raise WeightsError(f"asteroid model package {path}: the file does not exist")
    from torch.torch_version import TorchVersion

    try:
        # asteroid's `serialize()` stores torch.__version__ (a TorchVersion, a plain str subclass) in `infos`.
        with torch.serialization.safe_globals([TorchVersion]):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError and friends: say what to do
        raise WeightsError(
            f"refusing to load {path}: it is not plain tensors and values ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}). Maestro never unpickles a file that can run code; re-save the package "
            "from a trusted environment with torch.save({'model_name': ..., 'model_args': ..., 'state_dict': ...})"
        ) from exc
    if not isinstance(package, dict) or not {"model_name", "model_args", "state_dict"} <= set(package):
        keys = ", ".join(sorted(map(str, package))) if isinstance(package, dict) else type(package).__name__
        raise WeightsError(
            f"{path} is not an asteroid model package (needs model_name, model_args and state_dict; has {keys}). "
            "Save one with torch.save(model.serialize(), path)"
        )
    return package


def build_model(package: dict[str, Any], sample_rate: float | None = None) -> Any:
    """Asteroid's own class for `model_name`, built from `model_args`, with `state_dict` loaded strictly."""
    from asteroid import models as asteroid_models
    from asteroid.models.base_models import BaseModel

    name = str(package["model_name"])
    try:
        cls = asteroid_models.get(name)
    except ValueError:
        cls = None
    if cls is None or not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        known = "ConvTasNet, DPRNNTasNet, SuDORMRFNet, SuDORMRFImprovedNet, DPTNet, LSTMTasNet"
        raise WeightsError(f"asteroid has no separation model called {name!r} (known: {known})")
    args = dict(package["model_args"])
    if args.get("sample_rate") is None:
        if sample_rate is None:
            raise UsageError(f"the {name} package does not record its sample rate: add sample_rate=HZ (e.g. 8000)")
        args["sample_rate"] = float(sample_rate)
    try:
        model = cls(**args)
        model.load_state_dict(package["state_dict"])
    except (TypeError, RuntimeError, KeyError) as exc:
        raise WeightsError(f"the {name} package does not fit asteroid's {name} ({type(exc).__name__}: {exc})") from exc
    return model.eval()


def model_sources(model: Any) -> int:
    n = model.get_model_args().get("n_src") if hasattr(model, "get_model_args") else None
    if n is None:
        n = getattr(getattr(model, "masker", None), "n_src", None)
    if n is None:
        raise WeightsError(f"cannot tell how many sources {model.__class__.__name__} separates")
    return int(n)


# -- hub / cache -----------------------------------------------------------------------------------------------------
def _local_file(source: str) -> Path | None:
    """`source` as a path when it names a file, None when it reads as a hub id; a missing path is an error."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    looks_like_path = source.startswith((".", "/", "~")) or path.suffix in (".pth", ".bin", ".pt", ".ckpt")
    if looks_like_path or source.count("/") != 1:
        if _zenodo_url(source) is None:
            raise WeightsError(f"asteroid model package {source}: the file does not exist")
    return None


def asteroid_cache() -> Path:
    return Path(os.environ.get("ASTEROID_CACHE", Path.home() / ".cache" / "torch" / "asteroid"))


def _zenodo_url(name: str) -> str | None:
    from asteroid.utils.hub_utils import MODELS_URLS_HASHTABLE

    return MODELS_URLS_HASHTABLE.get(name)


def _known_rate(name: str) -> float | None:
    from asteroid.utils.hub_utils import SR_HASHTABLE

    return SR_HASHTABLE.get(name)


def _cached_hub_file(name: str) -> Path | None:
    """Where asteroid (or the Hugging Face hub) already keeps model `name`, or None. Never uses the network."""
    url = _zenodo_url(name)
    if url is not None:
        from asteroid.utils.hub_utils import url_to_filename

        path = asteroid_cache() / url_to_filename(url) / "model.pth"
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id, _, revision = name.partition("@")
    for cache_dir in (str(asteroid_cache()), None):
        found = try_to_load_from_cache(repo_id, HUB_FILENAME, cache_dir=cache_dir, revision=revision or None)
        if isinstance(found, str):
            return Path(found)
    return None


def _download(name: str) -> Path:
    from asteroid.utils.hub_utils import cached_download

    try:
        return Path(cached_download(name))
    except Exception as exc:  # noqa: BLE001 - offline, unknown id: one message with what to do
        raise WeightsError(f"downloading asteroid model {name!r} failed ({type(exc).__name__}: {exc}). "
                           + missing_model_message(name)) from exc


def missing_model_message(name: str) -> str:
    url = _zenodo_url(name)
    if url is not None:
        from asteroid.utils.hub_utils import url_to_filename

        where = f"download {url} to {asteroid_cache() / url_to_filename(url) / 'model.pth'}"
    else:
        repo_id = name.partition("@")[0]
        where = (f"download https://huggingface.co/{repo_id}/resolve/main/{HUB_FILENAME} and pass weights=THAT_FILE "
                 f"(or put it in the Hugging Face cache with `huggingface-cli download {repo_id} {HUB_FILENAME}`)")
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    hint = "" if offline else " Or add --separator-opt download=true to let asteroid fetch it (needs internet)."
    return f"asteroid model {name!r} is not on this machine; offline, {where}.{hint}"


# -- separation helpers ----------------------------------------------------------------------------------------------
def _chunk_count(length: int, segment: int) -> int:
    """How many model calls `separate_channels` makes (LambdaOverlapAdd pads a window on each side, hop = half)."""
    if segment <= 0 or length <= segment:
        return 1
    hop = segment // 2
    return (length + segment) // hop + 1


def separate_channels(model: Any, y: torch.Tensor, segment: int, device: torch.device, advance: Any) -> torch.Tensor:
    """[C, n] → [C, n_src, n], the channels as one batch; in half-overlapping Hann-windowed chunks of `segment`
    samples (asteroid's LambdaOverlapAdd, which also keeps each chunk's sources in the previous chunk's order)
    when the input is longer than that."""
    from asteroid.dsp.overlap_add import LambdaOverlapAdd

    def counted(chunk: torch.Tensor) -> torch.Tensor:
        out = model(chunk.to(device))
        advance()
        return out.float()

    with torch.no_grad():
        if segment <= 0 or y.shape[-1] <= segment:
            return fit_length(counted(y).cpu(), y.shape[-1])
        ola = LambdaOverlapAdd(counted, None, segment, segment // 2, window="hann", reorder_chunks=True)
        return fit_length(ola(y[:, None]).cpu(), y.shape[-1])


def _best_permutation(reference: torch.Tensor, estimate: torch.Tensor) -> tuple[int, ...]:
    """The order of `estimate`'s rows [S, n] that best correlates with `reference`'s rows [S, n]."""
    from scipy.optimize import linear_sum_assignment

    ref = reference.double() - reference.double().mean(dim=-1, keepdim=True)
    est = estimate.double() - estimate.double().mean(dim=-1, keepdim=True)
    ref = ref / (ref.norm(dim=-1, keepdim=True) + 1e-12)
    est = est / (est.norm(dim=-1, keepdim=True) + 1e-12)
    _, order = linear_sum_assignment((ref @ est.T).numpy(), maximize=True)
    return tuple(int(i) for i in order)
