"""Separation quality and speed of every separator on mixtures with known sources, side by side in one run.

Mixtures: every pair of the 12 real recordings in ../shared/audio (44.1 kHz stereo; 66 pairs, in
`itertools.combinations` order of the sorted names), the first `--seconds` seconds of each (all parts cut to the
shortest), every part scaled to RMS 1 (0 dB: each source equally loud), then summed. The pairs are split in two
halves by their position in that order: the even ones ("tune") are where the nmf defaults were chosen, the odd ones
("report", the default) are held out, and the documented figures come from them. Three variants of each pair:

  stereo   the recordings as they are (each has its own stereo image, mostly centred)
  panned   each source's mono downmix panned with a constant-power law, the first to −0.6, the second to +0.6
  mono     the mono downmix of everything

plus three 3-source mixtures (stereo, chosen by hand before the halves existed). No randomness goes into the
mixtures; separators run with seed 0.

Score: SI-SDR improvement (dB) per mixture = mean over its sources of SI-SDR(estimate, source) − SI-SDR(mixture,
source), on all channels together, with the estimates put in the order that scores best. The "mixture" row outputs
the mixture for every source, so its improvement is 0 by definition: it is computed, not assumed. Every summary gives
the mean, the minimum, how many mixtures came out worse than the mixture and how many the separator warned about
(for nmf: no decisive split, so its stems are the mixture). RTF = seconds of compute per second of
audio (lower is faster).

Rows: mixture (no separation), nmf (the built-in default), nmf-plain with --baseline (its NMF grouping alone,
without the direction clusters, the mask floor, the undecided fallback and the restarts; only the direction atom
cue is new), demucs:NAME and asteroid:MODEL where pretrained weights are on this machine (nothing is downloaded;
stereo variant only), and demucs_unittest* (demucs' tiny model with RANDOM weights: a sanity row for the plumbing,
not a quality number).

    python benchmarks/separation.py [--seconds 8] [--half report|tune|all] [--variants stereo,panned,mono]
                                    [--json results.json] [--only nmf,mixture] [--baseline] [--nmf-opt NAME=VALUE ...]

--nmf-opt sets an option of the nmf row (validated as `--separator-opt` is): how defaults are tried on the tune half,
e.g. `--half tune --nmf-opt undecided_entropy=0.5`.
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
THREE = [("thunder", "piano", "dog"), ("drum", "violin", "female_singing"), ("car", "cat", "cello")]
VARIANTS = ("stereo", "panned", "mono")
PAN = (-0.6, 0.6)


def pairs(half: str) -> list[tuple[str, str]]:
    """The 66 pairs of the recordings; "tune" = the even positions, "report" = the odd ones, "all" = every one."""
    names = sorted(p.stem for p in AUDIO.glob("*.wav"))
    every = list(itertools.combinations(names, 2))
    if half == "all":
        return every
    return [p for i, p in enumerate(every) if (i % 2 == 0) == (half == "tune")]


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

    def panned(self, positions: tuple[float, ...] = PAN) -> "Mixture":
        """Each source's mono downmix placed at a pan position (−1 left … +1 right), constant power, RMS 1."""
        out = []
        for source, position in zip(self.sources, positions):
            mono = source.mean(dim=0)
            angle = (position + 1) * math.pi / 4
            x = torch.stack([math.cos(angle) * mono, math.sin(angle) * mono])
            out.append(x / x.square().mean().sqrt())
        return Mixture(self.names, out, self.rate)

    def variant(self, name: str) -> "Mixture":
        return self if name == "stereo" else getattr(self, name)()


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
Runner = Callable[[Mixture], tuple[list[torch.Tensor], int]]  # estimates, and how many warnings the run gave
PLAIN = {"spatial_threshold": 0, "mask_floor": 0, "undecided_entropy": 1, "restarts": 1}


def via(separator: object) -> Runner:
    def run(m: Mixture) -> tuple[list[torch.Tensor], int]:
        mixture = Audio(m.mix, m.rate)
        ctx = RunContext(seed=0)
        stems = separator.separate(mixture, len(m.sources), ctx)  # type: ignore[attr-defined]
        return [s.samples for s in stems.sources], len(ctx.warnings)

    return run


def nmf(options: dict[str, object]) -> object:
    """The nmf separator built as a run builds it (options validated)."""
    from maestro.plugins import get_plugins

    return get_plugins().registry.get("separator", "nmf").build({k: str(v) for k, v in options.items()})


def runners(only: set[str] | None, baseline: bool, nmf_options: dict[str, str]
            ) -> tuple[dict[str, tuple[Runner, bool]], dict[str, str]]:
    """name → (runner, every variant? else stereo only); and name → reason for rows that cannot run here."""
    rows: dict[str, tuple[Runner, bool]] = {
        "mixture": (lambda m: ([m.mix.clone() for _ in m.sources], 0), True),
        "nmf": (via(nmf(nmf_options)), True),
    }
    if baseline:  # the NMF grouping alone: no direction clusters, no mask floor, no fallback, one start
        rows["nmf-plain"] = (via(nmf(PLAIN)), True)
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
        rows = {k: v for k, v in rows.items() if k.split(":")[0] in only or k in only}
    return rows, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--half", choices=("report", "tune", "all"), default="report")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma list of stereo, panned, mono")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--only", help="comma list of rows to run (e.g. mixture,nmf)")
    parser.add_argument("--baseline", action="store_true",
                        help="add the row nmf-plain: " + " ".join(f"{k}={v}" for k, v in PLAIN.items()))
    parser.add_argument("--nmf-opt", action="append", default=[], metavar="NAME=VALUE",
                        help="an option of the nmf row (repeatable)")
    args = parser.parse_args()
    if any("=" not in o for o in args.nmf_opt):
        sys.exit("--nmf-opt takes NAME=VALUE")
    nmf_options = dict(o.split("=", 1) for o in args.nmf_opt)
    if not AUDIO.is_dir():
        sys.exit(f"no recordings at {AUDIO} (the shared folder beside the repository)")
    variants = [v for v in args.variants.split(",") if v]
    if not set(variants) <= set(VARIANTS):
        sys.exit(f"--variants takes {', '.join(VARIANTS)}")

    rows, skipped = runners(set(args.only.split(",")) if args.only else None, args.baseline, nmf_options)
    # (variant, mixture label) → row → SI-SDRi; compute seconds and audio seconds per (variant, row).
    cases = [(v, build(names, args.seconds)) for v in variants for names in pairs(args.half)]
    if "stereo" in variants:
        cases += [("3 sources", build(names, args.seconds)) for names in THREE]
    scores: dict[str, dict[str, dict[str, float]]] = {}
    compute: dict[tuple[str, str], float] = {}
    audio: dict[tuple[str, str], float] = {}
    warned: dict[tuple[str, str], int] = {}
    for variant, base in cases:
        case = base.variant(variant if variant in VARIANTS else "stereo")
        for name, (run, every_variant) in rows.items():
            if not every_variant and variant not in ("stereo", "3 sources"):
                continue
            start = time.perf_counter()
            try:
                estimates, warnings = run(case)
            except MaestroError as exc:  # e.g. a 4-stem model asked for more sources than it has
                print(f"  {name} on {case.label}: {exc}", file=sys.stderr)
                continue
            compute[(variant, name)] = compute.get((variant, name), 0.0) + time.perf_counter() - start
            audio[(variant, name)] = audio.get((variant, name), 0.0) + case.sources[0].shape[-1] / case.rate
            warned[(variant, name)] = warned.get((variant, name), 0) + (warnings > 0)
            scores.setdefault(variant, {}).setdefault(case.label, {})[name] = improvement(estimates, case)
        print(f"done: {variant} {case.label}", file=sys.stderr, flush=True)

    names = list(rows)
    width = max(len(label) for table in scores.values() for label in table) + 2
    cols = {n: max(9, len(n) + 2) for n in names}

    def cell(value: float | None, digits: int = 2) -> str:
        return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    def line(title: str, values: dict[str, float | None], digits: int = 2) -> str:
        return title.ljust(width) + "".join(cell(values.get(n), digits).rjust(cols[n]) for n in names)

    print(f"SI-SDR improvement (dB), first {args.seconds:g} s, sources at equal RMS, seed 0, {args.half} half of "
          f"the pairs, torch {torch.__version__}, {torch.get_num_threads()} threads by default"
          + (f"; nmf with {' '.join(args.nmf_opt)}" if args.nmf_opt else ""))
    for variant, table in scores.items():
        print(f"\n[{variant}]" + (f" sources panned to {PAN[0]:+g} / {PAN[1]:+g}" if variant == "panned" else ""))
        print("".ljust(width) + "".join(n.rjust(cols[n]) for n in names))
        for label, row in table.items():
            print(line(label, row))
        per_row = {n: [row[n] for row in table.values() if n in row] for n in names}
        print(line("mean", {n: sum(v) / len(v) if v else None for n, v in per_row.items()}))
        print(line("min", {n: min(v) if v else None for n, v in per_row.items()}))
        print(line("worse than mixture", {n: float(sum(x < 0 for x in v)) if v else None
                                          for n, v in per_row.items()}, 0))
        print(line("warned", {n: float(warned[(variant, n)]) if (variant, n) in warned else None
                                          for n in names}, 0))
        print(line("RTF", {n: compute[(variant, n)] / audio[(variant, n)] if (variant, n) in compute else None
                           for n in names}, 3))
    print()
    if "demucs_unittest*" in rows:
        print("* demucs' tiny model with RANDOM weights: checks the plumbing (any rate, K mapping), not quality")
    for name, reason in skipped.items():
        print(f"{name}: {reason}")
    if args.json:
        args.json.write_text(json.dumps({"seconds": args.seconds, "half": args.half, "scores": scores,
                                         "rtf": {f"{v} {n}": compute[(v, n)] / audio[(v, n)] for v, n in compute},
                                         "warned": {f"{v} {n}": count for (v, n), count in warned.items()},
                                         "nmf_options": nmf_options,
                                         "skipped": skipped}, indent=2))


if __name__ == "__main__":
    main()
