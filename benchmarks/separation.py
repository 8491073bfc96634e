"""Separation quality and speed of every separator on mixtures with known sources, side by side in one run.

Mixtures: real recordings from ../shared/audio (44.1 kHz stereo), the first `--seconds` seconds of each (shorter if a
file is shorter; all parts of a mixture are cut to the shortest), every part scaled to RMS 1 (0 dB gains: each
source is equally loud), then summed. No randomness goes into the mixtures; separators run with seed 0.

Score: SI-SDR improvement (dB) per mixture = mean over its sources of SI-SDR(estimate, source) − SI-SDR(mixture,
source), on all channels together, with the estimates put in the order that scores best. The "mixture" row outputs
the mixture for every source, so its improvement is 0 by definition: it is computed, not assumed. RTF = seconds of
compute per second of audio (lower is faster).

Rows:
  mixture              baseline: no separation
  nmf                  the built-in DSP default, on the stereo mixture
  nmf (mono)           the same on the mono downmix (sources downmixed too): no spatial cues
  demucs:NAME          pretrained demucs models found on this machine (nothing is downloaded)
  demucs_unittest*     demucs' tiny model with RANDOM weights: a sanity row for the plumbing, not a quality number
  asteroid:MODEL       a pretrained asteroid model found on this machine

    python benchmarks/separation.py [--seconds 8] [--json results.json] [--only nmf,mixture]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from maestro.components import RunContext  # noqa: E402
from maestro.errors import MaestroError  # noqa: E402
from maestro.types import Audio  # noqa: E402

AUDIO = REPO.parent / "shared" / "audio"
# Pairs of unlike sounds (the DSP target: ≥ 3 dB mean), then three-source mixtures.
TWO = [("thunder", "piano"), ("drum", "violin"), ("dog", "cello"), ("ambulance", "guitar"),
       ("female_singing", "car"), ("cat", "trumpet")]
THREE = [("thunder", "piano", "dog"), ("drum", "violin", "female_singing"), ("car", "cat", "cello")]


@dataclass
class Mixture:
    names: tuple[str, ...]
    sources: list[torch.Tensor]  # [C, N] each, RMS 1
    rate: int

    @property
    def mix(self) -> torch.Tensor:
        return torch.stack(self.sources).sum(dim=0)

    @property
    def label(self) -> str:
        return " + ".join(self.names)

    def mono(self) -> "Mixture":
        return Mixture(self.names, [s.mean(dim=0, keepdim=True) for s in self.sources], self.rate)


def load(name: str, seconds: float) -> tuple[torch.Tensor, int]:
    import soundfile as sf

    data, rate = sf.read(AUDIO / f"{name}.wav", dtype="float32", always_2d=True)
    x = torch.from_numpy(data.T[:, : int(seconds * rate)].copy())
    return x, rate


def build(names: tuple[str, ...], seconds: float) -> Mixture:
    parts = [load(n, seconds) for n in names]
    rate = parts[0][1]
    n = min(p.shape[-1] for p, _ in parts)
    return Mixture(names, [p[:, :n] / p[:, :n].square().mean().sqrt() for p, _ in parts], rate)


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    est, ref = estimate.flatten().double(), reference.flatten().double()
    scale = (est @ ref) / (ref @ ref).clamp_min(1e-12)
    target = scale * ref
    noise = est - target
    return 10 * math.log10(float(target @ target + 1e-12) / float(noise @ noise + 1e-12))


def improvement(estimates: list[torch.Tensor], m: Mixture) -> float:
    mix = m.mix
    base = [si_sdr(mix, s) for s in m.sources]
    best = -math.inf
    for order in itertools.permutations(range(len(estimates)), len(m.sources)):
        gains = [si_sdr(estimates[o], s) - b for o, s, b in zip(order, m.sources, base)]
        best = max(best, sum(gains) / len(gains))
    return best


# -- separators ------------------------------------------------------------------------------------------------------
Runner = Callable[[Mixture], list[torch.Tensor]]


def via(separator: object) -> Runner:
    def run(m: Mixture) -> list[torch.Tensor]:
        mixture = Audio(m.mix, m.rate)
        stems = separator.separate(mixture, len(m.sources), RunContext(seed=0))  # type: ignore[attr-defined]
        return [s.samples for s in stems.sources]

    return run


def runners(only: set[str] | None) -> tuple[dict[str, tuple[Runner, bool]], dict[str, str]]:
    """name → (runner, mono input?); and name → reason for rows that cannot run here."""
    from maestro.separate.dsp import NMFSeparator

    rows: dict[str, tuple[Runner, bool]] = {
        "mixture": (lambda m: [m.mix.clone() for _ in m.sources], False),
        "nmf": (via(NMFSeparator()), False),
        "nmf (mono)": (via(NMFSeparator()), True),
    }
    skipped: dict[str, str] = {}
    try:
        from maestro_demucs.separator import DemucsSeparator

        for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"):
            sep = DemucsSeparator(name=name)
            try:
                sep.model()
            except MaestroError:
                skipped[f"demucs:{name}"] = "skipped: no weights"
                continue
            rows[f"demucs:{name}"] = (via(sep), False)
        rows["demucs_unittest*"] = (via(DemucsSeparator(name="demucs_unittest", shifts=0)), False)
    except ImportError:
        skipped["demucs"] = "skipped: plugins/maestro-demucs not installed"
    try:
        from maestro_asteroid.separator import DEFAULT_MODEL, AsteroidSeparator

        sep = AsteroidSeparator(model=DEFAULT_MODEL)
        try:
            sep.model()
            rows[f"asteroid:{DEFAULT_MODEL}"] = (via(sep), False)
        except MaestroError:
            skipped[f"asteroid:{DEFAULT_MODEL}"] = "skipped: no weights"
    except ImportError:
        skipped["asteroid"] = "skipped: plugins/maestro-asteroid not installed"
    if only:
        rows = {k: v for k, v in rows.items() if k.split(" ")[0].split(":")[0] in only or k in only}
    return rows, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--only", help="comma list of rows to run (e.g. mixture,nmf)")
    args = parser.parse_args()
    if not AUDIO.is_dir():
        sys.exit(f"no recordings at {AUDIO} (the shared folder beside the repository)")

    mixtures = [build(names, args.seconds) for names in TWO + THREE]
    rows, skipped = runners(set(args.only.split(",")) if args.only else None)
    scores: dict[str, dict[str, float]] = {name: {} for name in rows}
    seconds: dict[str, float] = {name: 0.0 for name in rows}
    audio_seconds = sum(m.sources[0].shape[-1] / m.rate for m in mixtures)
    for m in mixtures:
        for name, (run, mono) in rows.items():
            case = m.mono() if mono else m
            start = time.perf_counter()
            try:
                estimates = run(case)
            except MaestroError as exc:  # e.g. a 4-stem model asked for more sources than it has
                scores[name][m.label] = math.nan
                print(f"  {name} on {m.label}: {exc}", file=sys.stderr)
                continue
            seconds[name] += time.perf_counter() - start
            scores[name][m.label] = improvement(estimates, case)
        print(f"done: {m.label}", file=sys.stderr, flush=True)

    names = list(rows)
    width = max(len(m.label) for m in mixtures) + 2
    cols = {n: max(9, len(n) + 2) for n in names}

    def line(title: str, values: dict[str, float], digits: int = 2) -> str:
        return title.ljust(width) + "".join(f"{values[n]:{cols[n]}.{digits}f}" for n in names)

    print(f"SI-SDR improvement (dB), first {args.seconds:g} s, sources at equal RMS, seed 0")
    print("".ljust(width) + "".join(n.rjust(cols[n]) for n in names))
    for m in mixtures:
        print(line(m.label, {n: scores[n][m.label] for n in names}))

    def mean(n: str, k: int) -> float:
        vals = [v for label, v in scores[n].items() if label.count("+") == k - 1 and not math.isnan(v)]
        return sum(vals) / len(vals) if vals else math.nan

    print(line("mean, 2 sources", {n: mean(n, 2) for n in names}))
    print(line("mean, 3 sources", {n: mean(n, 3) for n in names}))
    print(line("RTF (compute/audio)", {n: seconds[n] / audio_seconds for n in names}, 3))
    if "demucs_unittest*" in rows:
        print("* demucs' tiny model with RANDOM weights: checks the plumbing (any rate, K mapping), not quality")
    for name, reason in skipped.items():
        print(f"{name}: {reason}")
    print(f"torch threads: {torch.get_num_threads()}")
    if args.json:
        args.json.write_text(json.dumps({"seconds": args.seconds, "scores": scores, "rtf": {
            n: seconds[n] / audio_seconds for n in names}, "skipped": skipped}, indent=2))


if __name__ == "__main__":
    main()
