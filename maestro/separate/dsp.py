"""The built-in DSP separator: direction clusters of a stereo image, else NMF atoms of the spectrogram grouped into
K sources by cues; soft masks either way.

Method (docs/separation.md says more, with measured numbers and the limits):
1. STFT of every channel (~46 ms Hann window, 75 % overlap, at the input rate). V = the channel-mean magnitude.
2. Stereo only: every bin's pan position from the channels' level difference; a power-weighted K-component Gaussian
   mixture over those positions (DUET-style). If its clusters are far apart (d′ ≥ `spatial_threshold`), their
   posteriors are the masks, left to right, and steps 3–6 are skipped.
3. Harmonic/percussive split of V by median filtering, so that no NMF atom has to model a tone and a noise burst.
4. KL-NMF of each part (multiplicative updates, random start from the run seed): `atoms` spectra × activations;
   steps 4–6 run `restarts` times from different starts and their masks are averaged.
5. Every atom gets seven scalar cues: which part it came from, spatial width (side vs mid energy), direction (mean
   pan of the bins it explains), spectral flatness, spectral centroid, temporal flux, temporal sparsity.
6. Grouping by recursive binary splits along the cues, scored by `balance − decisiveness_weight · mask entropy`;
   K−1 steps give K groups, whose NMF models give Wiener masks. If the masks are nearly even everywhere (entropy
   above `undecided_entropy`) no split is decisive: every stem becomes the mixture scaled by its share, with a
   warning. Then every mask gets a floor (`mask_floor` of the mixture spread evenly).
7. The masks are applied to the complex STFT of every channel, so the stems add up to the mixture. NMF stems are
   ordered from low to high spectral centroid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from maestro.components import RunContext
from maestro.errors import UsageError
from maestro.options import as_bool, as_float, as_int, check_sources
from maestro.separate.adapt import mixture_tensor
from maestro.separate.threads import cpu_threads
from maestro.types import Audio, Stems

_EPS = 1e-9
CUES = ("part", "width", "direction", "flatness", "centroid", "flux", "sparsity")


class NMFSeparator:
    """K-source separation by NMF atoms grouped with harmonic/percussive, spatial, spectral and temporal cues."""

    name = "nmf"

    def __init__(
        self,
        iterations: Any = 200,
        atoms: Any = 0,
        window_ms: Any = 46.0,
        hpss: Any = "true",
        decisiveness_weight: Any = 0.5,
        default_sources: Any = 2,
        threads: Any = 1,
        spatial_threshold: Any = 3.0,
        mask_floor: Any = 0.25,
        undecided_entropy: Any = 0.6,
        restarts: Any = 3,
    ) -> None:
        self.iterations = as_int("iterations", iterations, 1, 100_000)
        self.atoms = as_int("atoms", atoms, 0, 1000)  # per part; 0: 8 + 4·K
        self.window_ms = as_float("window_ms", window_ms, 4.0, 1000.0)
        self.hpss = as_bool("hpss", hpss)
        self.decisiveness_weight = as_float("decisiveness_weight", decisiveness_weight, 0.0, 100.0)
        self.default_sources = as_int("default_sources", default_sources, 1, 64)
        self.threads = as_int("threads", threads, 1, 256)
        self.spatial_threshold = as_float("spatial_threshold", spatial_threshold, 0.0, 1000.0)
        self.mask_floor = as_float("mask_floor", mask_floor, 0.0, 1.0)
        self.undecided_entropy = as_float("undecided_entropy", undecided_entropy, 0.0, 1.0)
        self.restarts = as_int("restarts", restarts, 1, 20)

    # -- public --------------------------------------------------------------------------------------------------------
    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        k = check_sources(sources, self.default_sources)
        x = mixture_tensor(mixture)
        if k == 1:
            return _stems([x.clone()], mixture, self.name)
        # The matrices here are small (about 1000 × 16 × 700 per 8 s): a second thread has little to split and
        # stalls when another process holds a core (see maestro/separate/threads.py).
        with cpu_threads(self.threads):
            return _stems(self.separate_tensor(x, mixture.sample_rate, k, ctx), mixture, self.name)

    def separate_tensor(self, x: torch.Tensor, sample_rate: int, k: int, ctx: RunContext) -> list[torch.Tensor]:
        """`x` [C, N] → K tensors [C, N] that add up to `x` (up to STFT round-off): left to right when the direction
        clusters decide, else low to high spectral centroid."""
        length = x.shape[-1]
        plan = self.plan(x, sample_rate, k, ctx)
        if plan is None:
            return [torch.zeros_like(x) for _ in range(k)]
        return [y.to(torch.float32).cpu().contiguous() for y in plan.stems(length)]

    def plan(self, x: torch.Tensor, sample_rate: int, k: int, ctx: RunContext) -> "MaskPlan | None":
        """The masks `separate_tensor` applies to `x` [C, N], with what chose them (None for silence): what
        benchmarks/separation_fallback.py reads to test decisiveness rules without re-deriving the method."""
        length = x.shape[-1]
        n_parts = 2 if self.hpss else 1
        per_part = self.atoms if self.atoms > 0 else 8 + 4 * k
        if per_part * n_parts < k:
            raise UsageError(
                f"nmf with atoms={per_part} per part makes {per_part * n_parts} atoms, too few for {k} sources: "
                f"raise atoms to at least {-(-k // n_parts)} or leave it at 0 (automatic)"
            )
        if length == 0 or float(x.abs().max()) == 0.0:
            return None
        device = torch.device(ctx.device or "cpu")
        stft = _Stft(sample_rate, self.window_ms, device)
        # Pad short clips so the STFT has some frames; the stems are cut back to `length`.
        padded = max(length, 2 * stft.n_fft)
        spec = stft.forward(torch.nn.functional.pad(x, (0, padded - length)).to(device))  # [C, F, T] complex
        v = spec.abs().mean(dim=0)
        scale = float(v.mean())
        if not scale > 1e-12:
            return None
        power = spec.abs().square().sum(dim=0) / scale**2  # [F, T], weights for clustering and grouping
        pan = bin_pan(spec)

        masks = self._spatial_masks(pan, power, k)
        if masks is not None:
            return MaskPlan(masks, "direction", [], power, spec, stft, padded)
        runs = self._nmf_runs(v / scale, spec, scale, stft, pan, power, k, per_part, ctx)
        masks = torch.stack([matched_masks(runs[0], run, power) for run in runs]).mean(dim=0)
        # How decided the groupings were is measured on each run's own masks: averaging softens them.
        undecided = sum(mask_entropy(run, power) for run in runs) / len(runs)
        method = "nmf"
        if undecided > self.undecided_entropy:
            # Nearly even masks everywhere: no split is decisive, and a wrong one is worse than none. Each stem
            # gets the mixture scaled by its share: exactly as good as the mixture, never worse.
            ctx.warn(f"nmf found no decisive split into {k} sources (mask entropy {undecided:.2f} > "
                     f"{self.undecided_entropy:g}): every stem is the mixture scaled by its share")
            shares = (masks * power).sum(dim=(1, 2)) / power.sum()
            masks = shares[:, None, None].expand_as(masks)
            method = "undecided"
        # A floor on every mask: on the tune half of the benchmark pairs, a quarter of the mixture in every stem
        # raised the mean and lifted the worst pairs (benchmarks/separation.py --half tune).
        masks = (1 - self.mask_floor) * masks + self.mask_floor / k
        return MaskPlan(masks, method, runs, power, spec, stft, padded)

    def _spatial_masks(self, pan: torch.Tensor | None, power: torch.Tensor, k: int) -> torch.Tensor | None:
        """Soft masks [K, F, T] from K direction clusters, left to right, if the stereo image is informative."""
        if pan is None or self.spatial_threshold <= 0:
            return None
        clusters = cluster_pan(pan, power, k)
        if clusters.separation < self.spatial_threshold or float(clusters.shares.min()) < 0.5 / (2 * k):
            return None
        return clusters.posterior

    def _nmf_runs(
        self,
        v: torch.Tensor,
        spec: torch.Tensor,
        scale: float,
        stft: "_Stft",
        pan: torch.Tensor | None,
        power: torch.Tensor,
        k: int,
        per_part: int,
        ctx: RunContext,
    ) -> list[torch.Tensor]:
        """Wiener masks [K, F, T] of NMF atoms grouped by cues, low to high spectral centroid, one per restart.

        With `restarts` > 1, NMF and grouping run again from other random starts; `plan` averages their masks (each
        restart's groups matched to the first's by their overlap), so that one start's luck weighs less.
        """
        if self.hpss:
            harm, perc = _hpss(v, stft.frames_for(0.2), stft.bins_for(370.0))
            parts = [harm, perc]
        else:
            parts = [v]
        runs = []
        with ctx.progress("separating (NMF)", self.iterations * len(parts) * self.restarts) as advance:
            for restart in range(self.restarts):
                gen = ctx.generator(offset=7 + 1000 * restart)
                ws, hs, origin = [], [], []
                for index, part in enumerate(parts):
                    w, h = nmf_kl(part, per_part, self.iterations, gen, advance)
                    ws.append(w)
                    hs.append(h)
                    origin += [float(index)] * per_part
                w = torch.cat(ws, dim=1)
                h = torch.cat(hs, dim=0)
                cues = atom_cues(w, h, torch.tensor(origin, device=w.device), spec, scale, stft, pan, power)
                energy = h.sum(dim=1)  # W columns sum to 1
                groups = group_atoms(w, h, cues, energy, power, k, self.decisiveness_weight)
                groups = _order_by_centroid(groups, w, energy)
                runs.append(_wiener(torch.stack([w[:, g] @ h[g] for g in groups])))  # [K, F, T]
        return runs


@dataclass
class MaskPlan:
    """The masks the nmf separator applies to one input, and what chose them."""

    masks: torch.Tensor  # [K, F, T] applied to every channel's STFT (floor included)
    method: str  # "direction" (the stereo clusters decided), "nmf", or "undecided" (the mixture-share fallback)
    runs: list[torch.Tensor]  # each restart's own NMF masks [K, F, T] (empty for "direction")
    power: torch.Tensor  # [F, T] the bins' power summed over channels (relative), the weights of every decision
    spec: torch.Tensor  # [C, F, T] the complex STFT the masks apply to
    stft: "_Stft"
    spec_length: int  # samples the STFT covers (the input padded to at least two windows)

    def stems(self, length: int) -> list[torch.Tensor]:
        """The masks applied: K tensors [C, length] that add up to the input."""
        return [self.stft.inverse(self.spec * mask, self.spec_length)[:, :length] for mask in self.masks]


def matched_masks(reference: torch.Tensor, masks: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """`masks` [K, F, T] reordered so that each lines up with the `reference` mask it overlaps most (by power)."""
    from scipy.optimize import linear_sum_assignment

    overlap = torch.einsum("aft,bft,ft->ab", reference.double(), masks.double(), power.double())
    _, order = linear_sum_assignment(overlap.cpu().numpy(), maximize=True)
    return masks[torch.as_tensor(order, device=masks.device)]


# -- STFT ------------------------------------------------------------------------------------------------------------
@dataclass
class _Stft:
    sample_rate: int
    window_ms: float
    device: torch.device

    def __post_init__(self) -> None:
        target = max(64.0, self.sample_rate * self.window_ms / 1000.0)
        self.n_fft = int(2 ** round(math.log2(target)))
        self.hop = self.n_fft // 4
        self.window = torch.hann_window(self.n_fft, device=self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant", return_complex=True
        )

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)

    def frames_for(self, seconds: float) -> int:
        return _odd(seconds * self.sample_rate / self.hop)

    def bins_for(self, hertz: float) -> int:
        return _odd(hertz * self.n_fft / self.sample_rate)

    def bin_freqs(self) -> torch.Tensor:
        return torch.arange(self.n_fft // 2 + 1, device=self.device) * (self.sample_rate / self.n_fft)


def _odd(value: float) -> int:
    n = max(3, int(round(value)))
    return n if n % 2 else n + 1


# -- harmonic / percussive -------------------------------------------------------------------------------------------
def _median_filter(v: torch.Tensor, size: int, dim: int, block: int = 256) -> torch.Tensor:
    """Running median of `v` [F, T] along `dim` (edges repeated), in blocks so memory stays ~`size`×block×other."""
    x = v if dim == 1 else v.T
    pad = size // 2
    xp = torch.cat([x[:, :1].expand(-1, pad), x, x[:, -1:].expand(-1, pad)], dim=1)
    out = torch.empty_like(x)
    for start in range(0, x.shape[1], block):
        stop = min(start + block, x.shape[1])
        out[:, start:stop] = xp[:, start : stop + 2 * pad].unfold(1, size, 1).median(dim=-1).values
    return out if dim == 1 else out.T


def _hpss(v: torch.Tensor, time_kernel: int, freq_kernel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split magnitude `v` into harmonic and percussive parts with soft (Wiener) median-filter masks; they sum to v."""
    harm = _median_filter(v, time_kernel, dim=1)
    perc = _median_filter(v, freq_kernel, dim=0)
    mask = harm.square() / (harm.square() + perc.square() + _EPS)
    return v * mask, v * (1 - mask)


# -- NMF -------------------------------------------------------------------------------------------------------------
def nmf_kl(
    v: torch.Tensor, rank: int, iterations: int, gen: torch.Generator, advance: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """NMF V ≈ W·H minimising the KL divergence (Lee & Seung multiplicative updates); W columns sum to 1."""
    f, t = v.shape
    w = torch.rand(f, rank, generator=gen).to(v) + 0.1
    h = torch.rand(rank, t, generator=gen).to(v) + 0.1
    w = w / w.sum(dim=0, keepdim=True)
    h = h * (v.sum() / (w @ h).sum().clamp_min(_EPS))
    for _ in range(iterations):
        h = h * (w.T @ (v / (w @ h + _EPS))) / (w.sum(dim=0).unsqueeze(1) + _EPS)
        w = w * ((v / (w @ h + _EPS)) @ h.T) / (h.sum(dim=1).unsqueeze(0) + _EPS)
        norm = w.sum(dim=0, keepdim=True) + _EPS
        w = w / norm
        h = h * norm.T
        if advance is not None:
            advance()
    return w, h


# -- cues and grouping -----------------------------------------------------------------------------------------------
def bin_pan(spec: torch.Tensor) -> torch.Tensor | None:
    """Direction of every time-frequency bin of a stereo STFT [2, F, T]: −1 all left, 0 centre, +1 all right.

    The level difference read as an angle, atan2(|R|, |L|) mapped from [0, π/2] to [−1, 1]: a source panned with any
    pan law puts its bins at its own pan position wherever it dominates (the W-disjoint orthogonality DUET relies on).
    None for mono or more than two channels.
    """
    if spec.shape[0] != 2:
        return None
    return torch.atan2(spec[1].abs(), spec[0].abs()) * (4 / math.pi) - 1


def atom_cues(
    w: torch.Tensor,
    h: torch.Tensor,
    origin: torch.Tensor,
    spec: torch.Tensor,
    scale: float,
    stft: _Stft,
    pan: torch.Tensor | None = None,
    power: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Seven scalar cues per atom (see the module docstring), each a tensor [R]."""
    tiny = 1e-6
    model = w @ h + _EPS
    # Direction: the power-weighted mean pan of the bins the atom explains (under its own soft mask). Unlike width,
    # it tells a source on the left from one on the right. Zero without a stereo pair.
    if pan is not None and power is not None:
        weighted = power / model
        on_all = ((w.T @ weighted) * h).sum(dim=1)
        direction = ((w.T @ (weighted * pan)) * h).sum(dim=1) / (on_all + _EPS)
    else:
        direction = torch.zeros(w.shape[1], device=w.device, dtype=w.dtype)
    # Spatial width: the share of the atom's magnitude (under its own soft mask) that is in the channels' deviation
    # from their mean; for stereo that is the side signal |L − R| / 2 against the mid |L + R| / 2. Zero for mono.
    if spec.shape[0] > 1:
        centre = spec.mean(dim=0)
        mid = centre.abs() / scale
        dev = sum((channel - centre).abs().square() for channel in spec).div(spec.shape[0]).sqrt() / scale
        del centre
        on_dev = ((w.T @ (dev / model)) * h).sum(dim=1)
        on_mid = ((w.T @ (mid / model)) * h).sum(dim=1)
        width = on_dev / (on_dev + on_mid + _EPS)
    else:
        width = torch.zeros(w.shape[1], device=w.device, dtype=w.dtype)
    flatness = torch.log(w + tiny * w.mean()).mean(dim=0) - torch.log(w.mean(dim=0) + _EPS)
    freqs = stft.bin_freqs().to(w)
    centroid = torch.log((w * freqs[:, None]).sum(dim=0) / (w.sum(dim=0) + _EPS) + 1.0)
    hs = _smooth(h, 3) + tiny * h.mean() + _EPS
    flux = torch.log((hs[:, 1:] - hs[:, :-1]).clamp_min(0).mean(dim=1) / hs.mean(dim=1) + tiny)
    sparsity = torch.log(hs.norm(dim=1) / hs.sum(dim=1) * math.sqrt(hs.shape[1]))
    return {"part": origin.to(w), "width": width, "direction": direction, "flatness": flatness, "centroid": centroid,
            "flux": flux, "sparsity": sparsity}


def _smooth(h: torch.Tensor, width: int) -> torch.Tensor:
    if width <= 1 or h.shape[1] < width:
        return h
    kernel = torch.ones(1, 1, width, dtype=h.dtype, device=h.device) / width
    return torch.nn.functional.conv1d(h.unsqueeze(1), kernel, padding=width // 2).squeeze(1)[:, : h.shape[1]]


def best_threshold_split(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
    """Boolean mask of the upper side of the 1-D two-means split of `values` (weighted), or None if constant."""
    if values.numel() < 2 or float(values.max() - values.min()) < 1e-6:
        return None
    order = torch.argsort(values, stable=True)
    v = values[order].double()
    wt = weights[order].double().clamp_min(1e-12)
    cw = torch.cumsum(wt, 0)
    cwv = torch.cumsum(wt * v, 0)
    cwv2 = torch.cumsum(wt * v * v, 0)
    total_w, total_wv, total_wv2 = cw[-1], cwv[-1], cwv2[-1]
    lw, lwv, lwv2 = cw[:-1], cwv[:-1], cwv2[:-1]  # left side = first i+1 atoms
    rw, rwv, rwv2 = total_w - lw, total_wv - lwv, total_wv2 - lwv2
    within = (lwv2 - lwv**2 / lw) + (rwv2 - rwv**2 / rw)
    valid = v[1:] > v[:-1]  # only cut between distinct values
    if not bool(valid.any()):
        return None
    within = torch.where(valid, within, torch.full_like(within, math.inf))
    cut = int(torch.argmin(within)) + 1
    upper = torch.zeros(values.numel(), dtype=torch.bool, device=values.device)
    upper[order[cut:]] = True
    return upper


def group_atoms(
    w: torch.Tensor,
    h: torch.Tensor,
    cues: dict[str, torch.Tensor],
    energy: torch.Tensor,
    power: torch.Tensor,
    k: int,
    decisiveness_weight: float,
) -> list[torch.Tensor]:
    """Recursive binary splits of the atoms into K non-empty groups (lists of atom indices)."""
    rank = w.shape[1]
    groups = [torch.arange(rank, device=w.device)]
    total_power = power.sum() + _EPS
    while len(groups) < k:
        best: tuple[float, list[torch.Tensor]] | None = None
        for gi, group in enumerate(groups):
            if group.numel() < 2:
                continue
            seen: set[tuple[int, ...]] = set()
            for name in CUES:
                upper = best_threshold_split(cues[name][group], energy[group])
                if upper is None:
                    continue
                key = tuple(upper.tolist())
                if key in seen:
                    continue
                seen.add(key)
                candidate = groups[:gi] + [group[~upper], group[upper]] + groups[gi + 1 :]
                score = _split_score(w, h, candidate, power, total_power, decisiveness_weight)
                if best is None or score > best[0] + 1e-12:
                    best = (score, candidate)
        if best is None:  # every cue constant: cut the largest group in two by atom energy rank
            gi = max(range(len(groups)), key=lambda i: groups[i].numel())
            group = groups[gi]
            order = group[torch.argsort(energy[group], descending=True, stable=True)]
            groups = groups[:gi] + [order[0::2], order[1::2]] + groups[gi + 1 :]
        else:
            groups = best[1]
    return groups


def _split_score(
    w: torch.Tensor,
    h: torch.Tensor,
    groups: list[torch.Tensor],
    power: torch.Tensor,
    total_power: torch.Tensor,
    decisiveness_weight: float,
) -> float:
    """balance (energy share of the quietest group) − weight × power-weighted entropy of the Wiener masks."""
    masks = _wiener(torch.stack([w[:, g] @ h[g] for g in groups]))
    shares = (masks * power).sum(dim=(1, 2)) / total_power
    entropy = -(masks * torch.log(masks + _EPS)).sum(dim=0)
    mean_entropy = (entropy * power).sum() / total_power
    return float(shares.min() - decisiveness_weight * mean_entropy)


def mask_entropy(masks: torch.Tensor, power: torch.Tensor) -> float:
    """Power-weighted mean entropy of masks [K, F, T], in units of log K: 0 = every bin decided, 1 = all even."""
    k = masks.shape[0]
    entropy = -(masks * torch.log(masks + _EPS)).sum(dim=0)
    return float((entropy * power).sum() / (power.sum() + _EPS)) / math.log(k)


def _wiener(models: torch.Tensor) -> torch.Tensor:
    power = models.square()
    return power / (power.sum(dim=0, keepdim=True) + _EPS)


def _order_by_centroid(groups: list[torch.Tensor], w: torch.Tensor, energy: torch.Tensor) -> list[torch.Tensor]:
    bins = torch.arange(w.shape[0], device=w.device, dtype=w.dtype)

    def centroid(g: torch.Tensor) -> float:
        spectrum = (w[:, g] * energy[g]).sum(dim=1)
        return float((spectrum * bins).sum() / (spectrum.sum() + _EPS))

    return sorted(groups, key=centroid)


def _stems(estimates: list[torch.Tensor], mixture: Audio, separator: str) -> Stems:
    sources = [
        Audio(e.to(torch.float32), mixture.sample_rate, label=f"source {i + 1}", origin=separator)
        for i, e in enumerate(estimates)
    ]
    return Stems(sources=sources, mixture=mixture, separator=separator)


# -- spatial clustering ----------------------------------------------------------------------------------------------
@dataclass
class SpatialClusters:
    """A K-component Gaussian mixture over the bins' pan positions, weighted by power (DUET's histogram, soft)."""

    centres: torch.Tensor  # [K], −1 … +1, sorted left to right
    spreads: torch.Tensor  # [K] standard deviations
    shares: torch.Tensor  # [K] power share
    posterior: torch.Tensor  # [K, F, T] responsibility of each cluster for each bin

    @property
    def separation(self) -> float:
        """The smallest gap between neighbouring centres, in units of their pooled spread (d′)."""
        if self.centres.numel() < 2:
            return 0.0
        gaps = self.centres[1:] - self.centres[:-1]
        pooled = ((self.spreads[1:].square() + self.spreads[:-1].square()) / 2).sqrt()
        return float((gaps / pooled).min())


def cluster_pan(pan: torch.Tensor, power: torch.Tensor, k: int, iterations: int = 30) -> SpatialClusters:
    """EM for a 1-D Gaussian mixture on `pan` [F, T] with bin weights `power` [F, T]; starts at power quantiles."""
    x = pan.reshape(-1).double()
    wt = power.reshape(-1).double()
    wt = wt / wt.sum().clamp_min(1e-30)
    order = torch.argsort(x)
    cdf = torch.cumsum(wt[order], 0)
    quantiles = torch.tensor([(i + 0.5) / k for i in range(k)], dtype=x.dtype)
    centres = x[order][torch.searchsorted(cdf, quantiles).clamp_max(x.numel() - 1)]
    spreads = torch.full((k,), 0.2, dtype=x.dtype)
    shares = torch.full((k,), 1.0 / k, dtype=x.dtype)
    for _ in range(iterations):
        log_p = (-0.5 * ((x[None] - centres[:, None]) / spreads[:, None]).square() - spreads[:, None].log()
                 + shares[:, None].clamp_min(1e-12).log())
        resp = torch.softmax(log_p, dim=0)  # [K, bins]
        mass = (resp * wt).sum(dim=1).clamp_min(1e-12)
        centres = (resp * wt * x).sum(dim=1) / mass
        spreads = ((resp * wt * (x[None] - centres[:, None]).square()).sum(dim=1) / mass).sqrt().clamp_min(0.02)
        shares = mass / mass.sum()
    order_k = torch.argsort(centres)
    centres, spreads, shares = centres[order_k], spreads[order_k], shares[order_k]
    log_p = (-0.5 * ((x[None] - centres[:, None]) / spreads[:, None]).square() - spreads[:, None].log()
             + shares[:, None].clamp_min(1e-12).log())
    resp = torch.softmax(log_p, dim=0).to(pan.dtype).reshape(k, *pan.shape)
    return SpatialClusters(centres.to(pan.dtype), spreads.to(pan.dtype), shares.to(pan.dtype), resp)
