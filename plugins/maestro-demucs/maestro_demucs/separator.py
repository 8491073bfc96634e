"""Demucs through its public API: `demucs.api.Separator.separate_tensor` separates, `demucs.api.list_models` names
the pretrained models; model files are read by safe_load.py, which never runs code from a file.

Demucs predicts fixed stems (drums, bass, other, vocals; plus guitar and piano for htdemucs_6s). Maestro asks for K
sources, so the stems are mapped: with `stems=a,b` those stems in that order (the others summed into a last "rest"
stem when K asks for one more); otherwise the K−1 most energetic stems are kept and the others summed into the K-th.

Long inputs are processed by `apply_model(split=True)` in overlapping chunks of `segment` seconds: the network only
ever sees one chunk, so its memory is bounded by the chunk; the output buffer grows with the input
(stems × channels × samples floats), as the stems themselves do.

Nothing is downloaded unless `download=true`: the model is looked up in demucs' own caches (the Hugging Face hub cache
for `adefossez/HTDemucs…` repos, torch hub's `checkpoints/` folder for the legacy `.th` files) and in Maestro's
weights folder, and a missing model raises a `WeightsError` naming the files and where to put them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from maestro.components import RunContext
from maestro.errors import UsageError, WeightsError
from maestro.separate.adapt import fit_length, make_stems, mixture_tensor, resample, seeded, to_channels
from maestro.options import as_bool, as_float, as_int, as_list, check_sources
from maestro.types import Audio, Stems
from maestro_demucs.safe_load import load_safetensors, load_th

DEFAULT_MODEL = "htdemucs"
RANDOM_TEST_MODEL = "demucs_unittest"  # demucs' own tiny HDemucs with random weights, built in memory


class DemucsSeparator:
    """`separate(mixture, K)` → K labelled stems from a Demucs model or bag of models."""

    def __init__(
        self,
        name: str = DEFAULT_MODEL,
        weights: str | None = None,
        stems: Any = None,
        shifts: Any = 1,
        overlap: Any = 0.25,
        segment: Any = None,
        download: Any = False,
    ) -> None:
        self.name = str(name).strip() or DEFAULT_MODEL
        self.weights = Path(str(weights)).expanduser() if weights not in (None, "") else None
        self.stems = as_list("stems", stems) if stems not in (None, "") else None
        self.shifts = as_int("shifts", shifts, minimum=0, maximum=20)
        self.overlap = as_float("overlap", overlap, minimum=0.0, maximum=0.9)
        self.segment = as_float("segment", segment, minimum=0.1) if segment not in (None, "") else None
        self.download = as_bool("download", download)
        self._model: Any = None

    # -- model ---------------------------------------------------------------------------------------------------------
    def model(self) -> Any:
        if self._model is None:
            self._model = load_demucs(self.name, self.weights, download=self.download)
        return self._model

    # -- separation ----------------------------------------------------------------------------------------------------
    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        x = mixture_tensor(mixture)
        model = self.model()
        names = list(model.sources)
        picked = self.stems or names
        natural = len(picked)
        k = check_sources(sources, natural)
        self._check_stems(names)
        limit = natural + 1 if self.stems else natural
        if k > limit:
            raise UsageError(
                f"demucs model {self.name!r} gives {len(names)} stems ({', '.join(names)}); {k} sources are too many"
                + (f" with stems={','.join(self.stems)} (use {natural} or {natural + 1})" if self.stems else "")
            )
        if self.stems and k < natural:
            raise UsageError(f"{k} sources do not fit stems={','.join(self.stems)}: use {natural} or {natural + 1}")

        segment = self._segment(model)
        rate, channels = int(model.samplerate), int(model.audio_channels)
        # Inputs with more channels than the model takes are separated one channel at a time.
        groups = [x] if x.shape[0] <= channels else [x[c : c + 1] for c in range(x.shape[0])]
        chunks = _chunk_count(model, x.shape[-1] * rate / mixture.sample_rate, segment, self.overlap, self.shifts)
        outputs = []
        with ctx.progress(f"separating (demucs {self.name})", chunks * len(groups)) as advance:

            def on_chunk(info: dict) -> None:
                if info.get("state") == "end":
                    advance()

            separator = _separator(model, device=ctx.device or "cpu", shifts=self.shifts, overlap=self.overlap,
                                   segment=segment, callback=on_chunk)
            for index, group in enumerate(groups):
                wav = resample(to_channels(group, channels), mixture.sample_rate, rate)
                # demucs draws its shift offsets from Python's `random`: seed it (and put it back afterwards).
                with seeded(ctx.seed + index), torch.no_grad():
                    _, by_stem = separator.separate_tensor(wav)
                out = torch.stack([by_stem[n] for n in names]).cpu()  # [S, channels, n]
                stems = fit_length(resample(out, rate, mixture.sample_rate), x.shape[-1])
                if group.shape[0] != channels:  # e.g. mono in: the model's channels averaged back down
                    stems = stems.mean(dim=1, keepdim=True).expand(-1, group.shape[0], -1)
                outputs.append(stems)
        estimates = torch.cat(outputs, dim=1)  # [S, C, N]
        chosen, labels = self._map(estimates, names, k)
        return make_stems(chosen, labels, mixture, "demucs")

    def _check_stems(self, names: list[str]) -> None:
        if self.stems:
            unknown = [s for s in self.stems if s not in names]
            if unknown:
                raise UsageError(
                    f"demucs model {self.name!r} has stems {', '.join(names)}; no {', '.join(unknown)} "
                    "(option stems takes some of those, comma-separated)"
                )

    def _segment(self, model: Any) -> float | None:
        if self.segment is None:
            return None
        limit = float(getattr(model, "max_allowed_segment", float("inf")))
        if hasattr(model, "segment") and model.__class__.__name__ == "HTDemucs":
            limit = min(limit, float(model.segment))
        if self.segment > limit:
            raise UsageError(f"segment={self.segment:g} is longer than model {self.name!r} allows ({limit:g} s)")
        return self.segment

    def _map(self, estimates: torch.Tensor, names: list[str], k: int) -> tuple[list[torch.Tensor], list[str]]:
        """Demucs stems → K labelled sources (see the module docstring)."""
        by_name = dict(zip(names, estimates))
        if self.stems:
            chosen = [by_name[s] for s in self.stems]
            labels = list(self.stems)
            if k == len(self.stems) + 1:
                rest = [n for n in names if n not in self.stems]
                chosen.append(torch.stack([by_name[n] for n in rest]).sum(dim=0))
                labels.append("rest")
            return chosen, labels
        if k == len(names):
            return list(estimates), names
        energy = {n: float(by_name[n].double().square().mean()) for n in names}
        ranked = sorted(names, key=lambda n: -energy[n])
        keep = sorted(ranked[: k - 1], key=names.index)  # model order
        merged = [n for n in names if n not in keep]
        label = "+".join(merged)
        return [by_name[n] for n in keep] + [torch.stack([by_name[n] for n in merged]).sum(dim=0)], keep + [label]


def _chunk_count(model: Any, length: float, segment: float | None, overlap: float, shifts: int) -> int:
    """How many chunk forward passes `apply_model` will make (for the progress bar; an estimate for bags)."""
    sub = list(getattr(model, "models", [model]))
    total = 0
    for m in sub:
        seg = float(segment if segment is not None else getattr(m, "segment", 8.0))
        stride = max(1, int((1 - overlap) * int(m.samplerate * seg)))
        padded = length + (m.samplerate if shifts else 0)  # shifts pad by up to 0.5 s on each side
        total += -(-int(padded) // stride) * max(1, shifts)
    return max(1, total)


def _separator(model: Any, **parameters: Any) -> Any:
    """demucs' public `demucs.api.Separator` around a model Maestro has already loaded safely.

    `Separator.__init__` loads its model by name through `get_model`, which unpickles `.th` files with
    `weights_only=False`; this subclass only replaces that loading step with the model given (see safe_load.py).
    """
    from demucs.api import Separator

    class _Preloaded(Separator):
        def _load_model(self) -> None:
            self._model = model
            self._audio_channels = model.audio_channels
            self._samplerate = model.samplerate

    return _Preloaded(**parameters)


# -- loading ---------------------------------------------------------------------------------------------------------
def load_demucs(name: str, weights: Path | None = None, download: bool = False) -> Any:
    """A demucs model or bag by name: from `weights` (file or folder), from a cache, or downloaded when allowed.

    Every file goes through safe_load.py: nothing in a model file can run code.
    """
    if weights is not None:
        model = _load_from_path(name, weights)
    elif name == RANDOM_TEST_MODEL:
        from demucs.pretrained import get_model

        with seeded(0):  # random weights, built in memory (no file), the same ones every time
            model = get_model(name)
    else:
        model = _load_cached(name)
        if model is None:
            if not download:
                raise WeightsError(missing_model_message(name))
            model = _download(name)
    model.eval()
    return model


def _load_file(path: Path) -> Any:
    return load_safetensors(path) if path.suffix == ".safetensors" else load_th(path)


def _load_from_path(name: str, path: Path) -> Any:
    if not path.exists():
        raise WeightsError(f"demucs weights {path}: the file does not exist; pass weights=FILE.th, FILE.safetensors "
                           "or a folder")
    if path.is_file():
        try:
            if path.suffix == ".yaml":  # a bag description beside its model files
                return _load_bag_folder(path.stem, path.parent)
            return _load_file(path)
        except WeightsError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
            raise WeightsError(
                f"{path} is not a demucs model file ({type(exc).__name__}: {exc}); pass a .th package as demucs "
                "saves it, a demucs .safetensors file, or a folder with NAME.yaml"
            ) from exc
    try:
        bag = _load_bag_folder(name, path)
        if bag is not None:
            return bag
        single = _signature_file(path, name)
        if single is not None:
            return _load_file(single)
    except WeightsError:
        raise
    except (KeyError, OSError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"could not load demucs model {name!r} from {path} ({type(exc).__name__}: {exc})") from exc
    listing = ", ".join(sorted(p.name for p in path.iterdir())[:20])
    raise WeightsError(
        f"could not load demucs model {name!r} from {path}: a folder needs {name}.yaml with its models' .th or "
        f".safetensors files, or a {name}.th file; found: {listing or 'nothing'}"
    )


def _load_bag(description: Path, find: Any) -> Any:
    """A BagOfModels from its `.yaml` description; `find(signature)` gives each model's file (or None)."""
    import yaml
    from demucs.apply import BagOfModels

    bag = yaml.safe_load(description.read_text())
    models = []
    for sig in bag["models"]:
        found = find(sig)
        if found is None:
            return None
        models.append(_load_file(Path(found)))
    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


def _load_bag_folder(name: str, folder: Path) -> Any | None:
    """`name.yaml` plus one file per signature (`<sig>.safetensors`, `<sig>.th` or `<sig>-<hash>.th`) in `folder`."""
    import yaml

    description = folder / f"{name}.yaml"
    if not description.is_file():
        return None
    for sig in yaml.safe_load(description.read_text())["models"]:
        if _signature_file(folder, sig) is None:
            raise WeightsError(f"{description} lists model {sig}, but {folder} has no {sig}.safetensors or {sig}*.th")
    return _load_bag(description, lambda sig: _signature_file(folder, sig))


def _signature_file(folder: Path, sig: str) -> Path | None:
    for candidate in [folder / f"{sig}.safetensors", folder / f"{sig}.th", *sorted(folder.glob(f"{sig}-*.th"))]:
        if candidate.is_file():
            return candidate
    return None


def _catalogue() -> tuple[dict[str, str], dict[str, Path]]:
    """demucs' public list of its pretrained models: signature → URL of the legacy file, and bag name → `.yaml`."""
    from demucs.api import list_models

    listing = list_models()
    return dict(listing["single"]), {name: Path(p) for name, p in listing["bag"].items()}


def _bag_signatures(name: str) -> list[str] | None:
    """The signatures that make up model `name` (a bag in demucs' list, or one signature), or None if unknown."""
    import yaml

    singles, bags = _catalogue()
    if name in bags:
        return list(yaml.safe_load(bags[name].read_text())["models"])
    if name in singles:
        return [name]
    return None


def known_models() -> list[str]:
    return sorted(_catalogue()[1])


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _load_cached(name: str) -> Any | None:
    """The model from a local cache, or None. Looks at files only: never touches the network."""
    from demucs.repo import check_checksum

    sigs = _bag_signatures(name)
    if sigs is None:
        if "/" in name or name.startswith("hf://"):
            return _load_hf_cached(name.removeprefix("hf://"))
        raise UsageError(
            f"demucs has no model named {name!r}. Known: {', '.join(known_models())} (or a signature, or "
            "weights=PATH for a local model file or folder)"
        )
    hf = _load_hf_cached(name)
    if hf is not None:
        return hf
    urls, bags = _catalogue()
    paths = {sig: _legacy_cached_path(urls[sig]) for sig in sigs}
    if any(p is None for p in paths.values()):
        return None
    for path in paths.values():
        assert path is not None
        if "-" in path.stem:  # demucs names its files <signature>-<first hex digits of the sha256>
            check_checksum(path, path.stem.rsplit("-", 1)[-1])
    if name not in bags:
        return _load_file(paths[name])  # type: ignore[arg-type]
    return _load_bag(bags[name], paths.get)


def _legacy_cached_path(url: str) -> Path | None:
    """Where torch hub (as demucs calls it) keeps `url`, or Maestro's weights folder; None if in neither."""
    filename = url.rsplit("/", 1)[-1]
    candidates = [torch_hub_checkpoints() / filename]
    try:
        from maestro import weights as maestro_weights

        candidates.append(maestro_weights.weights_dir() / filename)
    except Exception:  # noqa: BLE001 - the weights module is optional here
        pass
    for path in candidates:
        if path.is_file():
            return path
    return None


def _hf_repo(name: str) -> tuple[str, str]:
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name

    namespace, short = (name.split("/", 1) if "/" in name else (DEFAULT_NAMESPACE, name))
    return f"{namespace}/{hf_repo_name(short)}", short


def _load_hf_cached(name: str) -> Any | None:
    """A bag from the Hugging Face cache (demucs' own repo layout), if every file is there."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id, short = _hf_repo(name)
    description = try_to_load_from_cache(repo_id, f"{short}.yaml")
    if not isinstance(description, str):
        return None

    def find(sig: str) -> str | None:
        found = try_to_load_from_cache(repo_id, f"{sig}.safetensors")
        return found if isinstance(found, str) else None

    return _load_bag(Path(description), find)


def _download(name: str) -> Any:
    """Fetch the files demucs would (its Hugging Face repo, else the legacy URLs), then load them like cached ones."""
    try:
        try:
            from huggingface_hub import hf_hub_download

            repo_id, short = _hf_repo(name)
            import yaml

            description = hf_hub_download(repo_id, f"{short}.yaml")
            for sig in yaml.safe_load(Path(description).read_text())["models"]:
                hf_hub_download(repo_id, f"{sig}.safetensors")
        except Exception:  # noqa: BLE001 - not on the hub: demucs' legacy files
            urls, _ = _catalogue()
            torch_hub_checkpoints().mkdir(parents=True, exist_ok=True)
            for sig in _bag_signatures(name) or []:
                target = torch_hub_checkpoints() / urls[sig].rsplit("/", 1)[-1]
                if not target.is_file():
                    torch.hub.download_url_to_file(urls[sig], str(target), hash_prefix=None, progress=False)
        model = _load_cached(name)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline, blocked, corrupt: one message with what to do
        raise WeightsError(f"downloading demucs model {name!r} failed ({type(exc).__name__}: {exc}). "
                           + missing_model_message(name)) from exc
    if model is None:
        raise WeightsError(f"downloading demucs model {name!r} left files missing. " + missing_model_message(name))
    return model


def missing_model_message(name: str) -> str:
    """Which files model `name` needs and where they go, for a machine without them."""
    sigs = _bag_signatures(name) or []
    urls, _ = _catalogue()
    links = [urls[s] for s in sigs if s in urls]
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    hint = "" if offline else " Or add --separator-opt download=true to let demucs fetch them (needs internet)."
    return (
        f"demucs model {name!r} is not on this machine. Offline: download {', '.join(links) or 'its files'} "
        f"into {torch_hub_checkpoints()} (demucs' own cache), or pass weights=PATH (a .th file, or a folder with "
        f"{name}.yaml and those files).{hint}"
    )
