"""Can a blind quantity tell the nmf separator's losing splits from its good ones? Chosen on the tune half, checked
on the report half, side by side in one run.

The worst-case goal of issue 15: no 0 dB two-source mixture of real recordings may come out worse than the mixture.
The exact fallback (every stem the mixture scaled by its share: 0 dB, never worse) meets it wherever it is used; the
question is when to use it. For every 2-source pair of `benchmarks/separation.py` (same mixtures, halves, variants
and score; unpanned stereo and mono, where the NMF grouping decides), this computes quantities the separator can see
without the sources, from `NMFSeparator.plan` (the masks the default run applies and each restart's own masks):

  entropy       power-weighted mask entropy, mean over the restarts (today's `undecided_entropy` test, 0.6)
  agreement     power-weighted share of the mask that restarts 2.. give the same way as restart 1 (mean; and min)
  envelope      correlation of the two stems' log frame energies
  overlap       overlap of the two stems' normalised spectra (Σ min)
  share         the quietest stem's share of the power

For each quantity, the rule "fall back when it is past t" takes the loosest t that sends every losing tune-half
mixture to the fallback, in the direction (above or below) that keeps more of the tune-half mean; the best pair is
the two such rules together that keep the most tune-half mean. Each rule is then applied, unchanged, to the report
half. The `oracle` row falls back on exactly the losing
mixtures (it reads the sources): what a perfect test would give.

    python benchmarks/separation_fallback.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import separation as bench  # noqa: E402  (the mixtures, halves and score of benchmarks/separation.py)

from maestro.components import RunContext  # noqa: E402
from maestro.separate.dsp import MaskPlan, matched_masks, mask_entropy  # noqa: E402
from maestro.separate.threads import cpu_threads  # noqa: E402

VARIANTS = ("stereo", "mono")


@dataclass
class Case:
    half: str
    variant: str
    label: str
    score: float  # the default run's SI-SDR improvement, dB
    method: str  # the plan's: nmf, undecided or direction
    quantities: dict[str, float]


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm() + 1e-12))


def quantities(plan: MaskPlan) -> dict[str, float]:
    power, runs = plan.power, plan.runs
    matched = [matched_masks(runs[0], run, power) for run in runs]  # as `plan` lines them up before averaging
    average = torch.stack(matched).mean(dim=0)
    agreements = [float(1 - ((runs[0] - run).abs().sum(dim=0) / 2 * power).sum() / power.sum()) for run in matched[1:]]
    stems = average * power  # [2, F, T] each stem's power under the averaged masks
    frames = torch.log(stems.sum(dim=1) + 1e-6 * float(power.sum(dim=0).mean()))
    spectra = stems.sum(dim=2)
    spectra = spectra / spectra.sum(dim=1, keepdim=True)
    return {
        "entropy": sum(mask_entropy(run, power) for run in runs) / len(runs),
        "agreement": sum(agreements) / len(agreements),
        "agreement_min": min(agreements),
        "envelope": correlation(frames[0], frames[1]),
        "overlap": float(torch.minimum(spectra[0], spectra[1]).sum()),
        "share": float((stems.sum(dim=(1, 2)) / power.sum()).min()),
    }


def measure(half: str, seconds: float) -> list[Case]:
    separator = bench.nmf({})
    cases = []
    for variant in VARIANTS:
        for names in bench.pairs(half):
            m = bench.build(names, seconds).variant(variant)
            with cpu_threads(separator.threads):
                plan = separator.plan(m.mix, m.rate, 2, RunContext(seed=0))
            stems = plan.stems(m.mix.shape[-1])
            qs = quantities(plan) if plan.runs else {}
            cases.append(Case(half, variant, m.label, bench.improvement(stems, m), plan.method, qs))
            print(f"done: {half} {variant} {m.label}", file=sys.stderr, flush=True)
    return cases


@dataclass(frozen=True)
class Rule:
    quantity: str
    high: bool  # fall back when the quantity is at or above the threshold (else at or below)
    threshold: float

    def fires(self, case: Case) -> bool:
        if case.method != "nmf":  # the direction clusters and the undecided fallback are left as they are
            return False
        value = case.quantities[self.quantity]
        return value >= self.threshold if self.high else value <= self.threshold

    def __str__(self) -> str:
        return f"{self.quantity} {'≥' if self.high else '≤'} {self.threshold:.3f}"


def loosest(quantity: str, high: bool, losers: list[Case]) -> Rule:
    values = [c.quantities[quantity] for c in losers]
    return Rule(quantity, high, min(values) if high else max(values))


Test = Callable[[Case], bool]


def after(cases: list[Case], fires: Test) -> list[float]:
    return [0.0 if fires(c) else c.score for c in cases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if not bench.AUDIO.is_dir():
        sys.exit(f"no recordings at {bench.AUDIO} (the shared folder beside the repository)")
    tune, report = measure("tune", args.seconds), measure("report", args.seconds)
    losers = [c for c in tune if c.score < 0 and c.method == "nmf"]
    names = list(next(c.quantities for c in tune if c.quantities))
    singles = []
    if losers:  # per quantity, the direction that keeps more of the tune half's mean
        for q in names:
            rules = [loosest(q, high, losers) for high in (True, False)]
            singles.append(max(rules, key=lambda r: statistics.mean(after(tune, r.fires))))

    def rule_of(rules: list[Rule] | tuple[Rule, ...]) -> Test:
        return lambda c: all(r.fires(c) for r in rules)

    candidates: list[tuple[str, Test]] = [("the default (no extra test)", lambda c: False)]
    candidates += [(str(r), rule_of([r])) for r in singles]
    if len(singles) > 1:
        pairs = [(a, b) for a, b in itertools.combinations(singles, 2) if a.quantity != b.quantity]
        best = max(pairs, key=lambda p: statistics.mean(after(tune, rule_of(p))))
        candidates.append((f"best pair: {best[0]} and {best[1]}", rule_of(best)))
    candidates.append(("oracle (falls back on exactly the losers)", lambda c: c.score < 0))

    def cell(cases: list[Case], fires: Test) -> str:
        scores = after(cases, fires)
        sent = sum(1 for c in cases if fires(c))
        return f"{statistics.mean(scores):5.2f} {min(scores):6.2f} {sum(s < 0 for s in scores):3d} {sent:3d}"

    print(f"nmf default, 2-source pairs at 0 dB, first {args.seconds:g} s, seed 0; SI-SDR improvement in dB. "
          f"Thresholds chosen on the tune half ({len(losers)} losing mixtures there), applied unchanged to the "
          f"report half. Columns per set: mean, min, worse than the mixture, mixtures sent to the fallback.")
    sets = [("tune", v) for v in VARIANTS] + [("report", v) for v in VARIANTS]
    header = "rule".ljust(58) + "".join(f"{h} {v}".center(21) for h, v in sets)
    print(header)
    print("".ljust(58) + "".join("mean    min  <0 fb ".rjust(21) for _ in sets))
    for title, fires in candidates:
        row = title.ljust(58)
        for half, variant in sets:
            cases = [c for c in (tune if half == "tune" else report) if c.variant == variant]
            row += cell(cases, fires).rjust(21)
        print(row)
    print()
    entropy = next((r for r in singles if r.quantity == "entropy"), None)
    if entropy is not None and entropy.high:
        setting = math.floor(entropy.threshold * 100) / 100  # the separator's test is "above", so just under
        print(f"The entropy rule is the separator's own undecided test with a lower threshold: "
              f"--separator-opt undecided_entropy={setting:g}")
        for variant in VARIANTS:
            sent = [c.score for c in report if c.variant == variant and entropy.fires(c)]
            if sent:
                print(f"  on the report half it sends {len(sent)} {variant} mixtures, which scored "
                      f"{statistics.mean(sent):.2f} dB on average with the default")
    print("losing tune-half mixtures:", ", ".join(f"{c.variant} {c.label} ({c.score:.2f})" for c in losers))
    held = [c for c in report if c.score < 0]
    print("losing report-half mixtures:", ", ".join(f"{c.variant} {c.label} ({c.score:.2f})" for c in held))


if __name__ == "__main__":
    main()
