"""Demucs through its own loading (`demucs.pretrained.get_model`, `demucs.states.load_model`) and `apply_model`.

Demucs predicts fixed stems (drums, bass, other, vocals, and guitar/piano for htdemucs_6s). Maestro asks for K
sources, so the stems are mapped: with `stems=a,b` those stems in that order (the rest merged into a last "rest"
stem when K asks for one more); otherwise the K-1 most energetic stems are kept and the others summed into the K-th.
Long inputs are processed in overlapping chunks of `segment` seconds by `apply_model(split=True)`, so memory is
bounded by the chunk, not the input.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import torchaudio.functional as AF

from maestro.components import RunContext
from maestro.errors import UsageError, WeightsError
from maestro.options import as_float, as_int, as_list
from maestro.types import Audio, Stems


class DemucsSeparator:
    def __init__(self, name: str = "htdemucs", weights: str | None = None, stems: str | None = None,
                 shifts: Any = 1, overlap: Any = 0.25, segment: Any = None) -> None:
        self.name = name
        self.weights = Path(weights).expanduser() if weights else None
        self.stems = as_list("stems", stems) if stems else None
        self.shifts = as_int("shifts", shifts, minimum=0, maximum=20)
        self.overlap = as_float("overlap", overlap, minimum=0.0, maximum=0.9)
        self.segment = as_float("segment", segment, minimum=0.1) if segment not in (None, "") else None
        self._model: Any = None

    # -- model ---------------------------------------------------------------------------------------------------------
    def model(self) -> Any:
        if self._model is None:
            self._model = load_demucs(self.name, self.weights)
        return self._model

    # -- separation ----------------------------------------------------------------------------------------------------
    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        from demucs.apply import apply_model

        model = self.model()
        wav = _to_model_input(mixture, model.samplerate, model.audio_channels)
        # As the demucs CLI does: normalise by the mono reference, then undo it on the estimates.
        ref = wav.mean(0)
        mean, std = ref.mean(), ref.std()
        std = std if std > 0 else torch.ones(())
        segment = self.segment
        if segment is not None:
            segment = min(segment, float(getattr(model, "max_allowed_segment", segment)))
        # apply_model draws its shift offsets from Python's `random`: seed it so a run is reproducible.
        random.seed(ctx.seed)
        with torch.no_grad():
            estimates = apply_model(model, ((wav - mean) / std)[None], shifts=self.shifts, split=True,
                                    overlap=self.overlap, progress=False, device=ctx.device, segment=segment)[0]
        estimates = (estimates * std + mean).cpu()
        names = list(model.sources)
        picked = self._map(estimates, names, sources)
        return Stems([_to_mixture_format(s, model.samplerate, label, mixture) for label, s in picked], mixture)

    def _map(self, estimates: torch.Tensor, names: list[str], k: int | None) -> list[tuple[str, torch.Tensor]]:
        """Demucs stems -> K labelled sources (see the module docstring)."""
        by_name = dict(zip(names, estimates))
        if self.stems:
            unknown = [s for s in self.stems if s not in by_name]
            if unknown:
                raise UsageError(f"demucs model {self.name!r} has stems {', '.join(names)}; no {', '.join(unknown)}")
            keep = list(self.stems)
            if k is None or k == len(keep):
                return [(s, by_name[s]) for s in keep]
            if k == len(keep) + 1:
                rest = [n for n in names if n not in keep]
                return [(s, by_name[s]) for s in keep] + [("rest", sum(by_name[n] for n in rest))]
            raise UsageError(f"--sources {k} does not fit stems={','.join(keep)}: use {len(keep)} or {len(keep) + 1}")
        if k is None or k == len(names):
            return list(by_name.items())
        if k > len(names):
            raise UsageError(
                f"demucs model {self.name!r} gives {len(names)} stems ({', '.join(names)}); --sources {k} is too many"
            )
        energy = {n: float(by_name[n].pow(2).mean()) for n in names}
        ranked = sorted(names, key=lambda n: -energy[n])
        keep, merged = ranked[: k - 1], ranked[k - 1 :]
        keep.sort(key=names.index)  # stable, model order
        label = merged[0] if len(merged) == 1 else "+".join(sorted(merged, key=names.index))
        return [(n, by_name[n]) for n in keep] + [(label, sum(by_name[n] for n in merged))]


def load_demucs(name: str, weights: Path | None) -> Any:
    """A demucs model (or bag) by name, from a local file or folder, or from demucs' own caches/downloads."""
    from demucs.pretrained import get_model
    from demucs.states import load_model

    if weights is not None:
        if weights.is_file():
            try:
                model = load_model(weights)
            except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
                raise WeightsError(f"{weights} is not a demucs model file ({type(exc).__name__}: {exc})") from exc
            model.eval()
            return model
        if weights.is_dir():
            return get_model(name, repo=weights)
        raise WeightsError(f"demucs weights file {weights} does not exist")
    try:
        return get_model(name)
    except Exception as exc:  # noqa: BLE001 - offline, unknown name, corrupt download: say what to do
        raise WeightsError(_missing_model_message(name, exc)) from exc


def _missing_model_message(name: str, exc: Exception) -> str:
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    urls: list[str] = []
    bag = REMOTE_ROOT / f"{name}.yaml"
    if bag.exists():
        import yaml

        files = _parse_remote_files(REMOTE_ROOT / "files.txt")
        urls = [files[sig] for sig in yaml.safe_load(bag.read_text()).get("models", []) if sig in files]
    where = (
        f"download {', '.join(urls)} into {hub_dir} (torch hub's cache, where demucs looks)" if urls
        else f"put the model's files in a folder and pass weights=FOLDER (with {name}.yaml), or weights=FILE.th"
    )
    known = sorted(p.stem for p in REMOTE_ROOT.glob("*.yaml"))
    return (f"could not load demucs model {name!r} ({type(exc).__name__}: {exc}). On a machine that is online it "
            f"downloads on first use. Offline: {where}. Known names: {', '.join(known)}.")


def _to_model_input(mixture: Audio, rate: int, channels: int) -> torch.Tensor:
    wav = mixture.samples
    if mixture.channels != channels:
        mono = wav.mean(0, keepdim=True)
        wav = mono.expand(channels, -1) if channels > 1 else mono
        wav = wav.contiguous()
    if mixture.sample_rate != rate:
        wav = AF.resample(wav, mixture.sample_rate, rate)
    return wav


def _to_mixture_format(stem: torch.Tensor, rate: int, label: str, mixture: Audio) -> Audio:
    """Back to the mixture's rate, length and channel count (other channel counts get the mono stem repeated)."""
    if rate != mixture.sample_rate:
        stem = AF.resample(stem, rate, mixture.sample_rate)
    length = mixture.num_samples
    stem = stem[..., :length] if stem.shape[-1] >= length else torch.nn.functional.pad(stem, (0, length - stem.shape[-1]))
    if stem.shape[0] != mixture.channels:
        stem = stem.mean(0, keepdim=True).expand(mixture.channels, -1)
    return Audio(stem.float().contiguous(), mixture.sample_rate, label=label, origin="demucs")
