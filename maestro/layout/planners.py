"""Built-in layout planners: where each source goes on screen, per frame.

`LR`, `TD` (two sources), `grid` (any number), `auto` (boxes follow each source's stereo panning and loudness) and
`file` (keyframed boxes from a JSON or YAML file). Every planner returns a `Layout` with one box per source per frame,
in [0, 1] coordinates (x to the right, y down), labelled with the stems' labels in the stems' order.

Layout file format (`--layout file --layout-opt path=boxes.yaml`)::

    {"sources": [
        {"label": "thunder", "keyframes": [{"t": 0.0, "box": [0.0, 0.0, 0.5, 1.0]},
                                           {"t": 4.0, "box": [0.3, 0.1, 0.9, 0.9]}]},
        {"label": "dog", "box": [0.5, 0.5, 1.0, 1.0]}
    ]}

- one entry per source, as many as there are sources; when the labels name exactly the sources' labels the entries
  are matched by label, otherwise by order (with a warning when labels were given but do not match);
- a source has either `keyframes` (a list) or one static `box`;
- a keyframe has `t` (seconds) or `frame` (a frame index, 0-based), and `box` = [x0, y0, x1, y1] with
  0 ≤ x0 < x1 ≤ 1 and 0 ≤ y0 < y1 ≤ 1;
- boxes are interpolated linearly between keyframes and held before the first and after the last.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from maestro.errors import ComponentUnavailableError, UsageError
from maestro.options import as_float
from maestro.types import Box, Layout, Stems

if TYPE_CHECKING:
    import torch

    from maestro.components import RunContext


def check_count(planner: str, max_sources: int | None, count: int) -> None:
    """UsageError when a planner cannot place `count` sources."""
    if count < 1:
        raise UsageError(f"layout {planner} needs at least one source to place, got none")
    if max_sources is not None and count > max_sources:
        raise UsageError(
            f"layout {planner} places {max_sources} sources, got {count}: use --layout grid or auto"
        )


def _static(boxes: Sequence[Box], stems: Stems, num_frames: int, planner: str) -> Layout:
    frames = max(1, num_frames)
    return Layout(boxes=[[tuple(b)] * frames for b in boxes], labels=stems.labels, planner=planner)


def grid_boxes(count: int) -> list[Box]:
    """A near-square grid, row by row: rows = ⌊√K⌋, cols = ⌈K / rows⌉; a short last row keeps the cell size, centred."""
    rows = max(1, math.isqrt(count))
    cols = math.ceil(count / rows)
    width, height = 1.0 / cols, 1.0 / rows
    boxes: list[Box] = []
    for k in range(count):
        row, col = divmod(k, cols)
        in_row = min(cols, count - row * cols)
        offset = (cols - in_row) * width / 2  # centre a short last row
        x0 = offset + col * width
        boxes.append((x0, row * height, min(1.0, x0 + width), min(1.0, (row + 1) * height)))
    return boxes


class LeftRight:
    """Two sources side by side: the first on the left half, the second on the right (one source: whole frame)."""

    name = "LR"
    max_sources: int | None = 2

    def plan(self, stems: Stems, num_frames: int, ctx: "RunContext | None" = None) -> Layout:
        check_count(self.name, self.max_sources, len(stems))
        boxes = [(0.0, 0.0, 1.0, 1.0)] if len(stems) == 1 else [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)]
        return _static(boxes, stems, num_frames, self.name)


class TopDown:
    """Two sources stacked: the first on the top 40 %, the second on the bottom 60 %, as in the paper's TD layout."""

    name = "TD"
    max_sources: int | None = 2

    def plan(self, stems: Stems, num_frames: int, ctx: "RunContext | None" = None) -> Layout:
        check_count(self.name, self.max_sources, len(stems))
        boxes = [(0.0, 0.0, 1.0, 1.0)] if len(stems) == 1 else [(0.0, 0.0, 1.0, 0.4), (0.0, 0.4, 1.0, 1.0)]
        return _static(boxes, stems, num_frames, self.name)


class Grid:
    """Any number of sources in a near-square grid (see `grid_boxes`), in the stems' order."""

    name = "grid"
    max_sources: int | None = None

    def plan(self, stems: Stems, num_frames: int, ctx: "RunContext | None" = None) -> Layout:
        check_count(self.name, self.max_sources, len(stems))
        return _static(grid_boxes(len(stems)), stems, num_frames, self.name)


class Auto:
    """Boxes that follow the sound: x from each source's stereo panning, size from its loudness, over time.

    Per video frame, each source's left/right energy gives its pan (−1 left … +1 right) and level; both are smoothed
    with a Gaussian of `smooth` seconds (the pan weighted by energy, so silences do not jerk the box). A box's width
    goes from `min_width` (30 dB or more below the loudest source at that moment) to `max_width` (the loudest), its
    height likewise from 45 % to 100 %. Widths are scaled down when together they would cover more than `fill` of
    the width, so boxes have room to move. Each frame the boxes are packed side by side in the order of their pans so
    they do not overlap, then the box edges are smoothed over time once more, so a source that crosses another slides
    past it (briefly overlapping) instead of jumping.
    Mono (or dual-mono) input has no panning: the sources then go into a grid, brightest (highest spectral centroid)
    first, and a warning says so.
    """

    name = "auto"
    max_sources: int | None = None
    RANGE_DB = 30.0

    def __init__(self, smooth: Any = 1.0, min_width: Any = 0.15, max_width: Any = 0.5, fill: Any = 0.9) -> None:
        self.smooth = as_float("smooth", smooth, minimum=0.0, maximum=60.0)
        self.fill = as_float("fill", fill, minimum=0.1, maximum=1.0)
        self.min_width = as_float("min_width", min_width, minimum=0.02, maximum=1.0)
        self.max_width = as_float("max_width", max_width, minimum=0.02, maximum=1.0)
        if self.min_width > self.max_width:
            raise UsageError(f"option min_width ({self.min_width}) must not exceed max_width ({self.max_width})")

    def plan(self, stems: Stems, num_frames: int, ctx: "RunContext | None" = None) -> Layout:
        import torch

        count = len(stems)
        check_count(self.name, self.max_sources, count)
        frames = max(1, num_frames)
        if not any(_is_stereo(s.samples) for s in stems.sources):
            if ctx is not None:
                ctx.warn(
                    "layout auto: the sources have no stereo panning (mono input), so they are placed in a grid, "
                    "brightest (highest spectral centroid) first; use --layout file to place them by hand"
                )
            brightness = [_centroid(s.mono(), s.sample_rate) for s in stems.sources]
            order = sorted(range(count), key=lambda k: (-brightness[k], k))
            cells = grid_boxes(count)
            boxes = [cells[order.index(k)] for k in range(count)]
            return _static(boxes, stems, frames, self.name)

        # Mono stems beside stereo ones count as centred (both channels the same).
        pairs = [s.samples[[0, min(1, s.channels - 1)]] for s in stems.sources]
        energy = torch.stack([_window_energy(x, frames) for x in pairs])  # [K, 2, T]
        fps = frames / max(stems.sources[0].duration, 1e-9)
        sigma = self.smooth * fps
        left, right = energy[:, 0], energy[:, 1]  # [K, T]
        total = _gaussian_smooth(left + right, sigma)
        pan = _gaussian_smooth(right - left, sigma) / total.clamp(min=1e-20)  # energy-weighted mean pan
        # Where a source is silent (60 dB under its peak) its pan means nothing: hold the nearest audible one.
        pan = _hold(pan, total > total.max(dim=1, keepdim=True).values * 1e-6)
        level_db = 10 * torch.log10((total / 2).clamp(min=1e-10))
        relative = (1 + (level_db - level_db.max(dim=0).values) / self.RANGE_DB).clamp(0, 1)  # [K, T]

        widths = self.min_width + (self.max_width - self.min_width) * relative
        widths = widths * (self.fill / widths.sum(dim=0)).clamp(max=1.0)  # leave room to move
        heights = 0.45 + 0.55 * relative
        centres = 0.5 + 0.5 * pan.clamp(-1, 1)

        # Pack in each frame's left-to-right order of pans, then smooth the edges: order swaps become slides.
        order = _stable_order(centres, (right - left).sum(dim=1) / (right + left).sum(dim=1).clamp(min=1e-20))
        lefts = _pack(centres.gather(0, order), widths.gather(0, order))
        x0 = torch.empty_like(lefts).scatter_(0, order, lefts)
        x1 = x0 + widths
        x0, x1 = _gaussian_smooth(x0, sigma), _gaussian_smooth(x1, sigma)
        x0, x1 = x0.clamp(0.0, 1.0), x1.clamp(0.0, 1.0)
        y0 = (1 - heights) / 2
        y1 = (y0 + heights).clamp(max=1.0)
        boxes = [list(zip(*edges)) for edges in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist())]
        return Layout(boxes=boxes, labels=stems.labels, planner=self.name)


def _window_energy(samples: "torch.Tensor", frames: int) -> "torch.Tensor":
    """Mean square of each channel over `frames` equal windows, `[C, frames]` (float64)."""
    import torch

    x = samples.double()
    cumulative = torch.nn.functional.pad(x.square().cumsum(dim=-1), (1, 0))
    edges = torch.linspace(0, x.shape[-1], frames + 1).round().long()
    # Windows shorter than a sample (audio shorter than the video has frames) borrow the nearest sample.
    hi = torch.maximum(edges[1:], (edges[:-1] + 1).clamp(max=x.shape[-1]))
    lo = torch.minimum(edges[:-1], (hi - 1).clamp(min=0))
    length = (hi - lo).clamp(min=1)
    return (cumulative[:, hi] - cumulative[:, lo]) / length


def _hold(values: "torch.Tensor", valid: "torch.Tensor") -> "torch.Tensor":
    """`values [K, T]` with each invalid entry replaced by the last valid one before it (the first valid one before
    the first); rows with nothing valid are left as they are."""
    import torch

    steps = torch.arange(values.shape[-1]).expand_as(values)
    last = torch.where(valid, steps, -1).cummax(dim=-1).values
    first = torch.where(valid, steps, values.shape[-1]).min(dim=-1, keepdim=True).values
    source = torch.where(last >= 0, last, first).clamp(max=values.shape[-1] - 1)
    return torch.where(valid.any(dim=-1, keepdim=True), values.gather(-1, source), values)


def _is_stereo(samples: "torch.Tensor") -> bool:
    """Two channels that differ by more than -40 dB (side vs mid energy): mono and dual mono have no panning."""
    if samples.shape[0] < 2:
        return False
    left, right = samples[0].double(), samples[1].double()
    return float((left - right).square().sum()) > 1e-4 * float((left + right).square().sum())


SWAP_MARGIN = 0.1  # centres must cross by this much before two boxes change places: no flicker between equals


def _stable_order(centres: "torch.Tensor", mean_pan: "torch.Tensor") -> "torch.Tensor":
    """`[K, T]`: the sources from left to right in each frame. It starts in the order of the sources' average pans
    and two neighbours swap only once their desired centres have crossed by SWAP_MARGIN (hysteresis)."""
    import torch

    count, frames = centres.shape
    wanted = centres.t().tolist()  # [T][K]
    current = sorted(range(count), key=lambda k: (float(mean_pan[k]), k))
    columns = []
    for t in range(frames):
        swapped = True
        while swapped:  # bubble: few sources, and the order changes rarely
            swapped = False
            for i in range(count - 1):
                a, b = current[i], current[i + 1]
                if wanted[t][a] > wanted[t][b] + SWAP_MARGIN:
                    current[i], current[i + 1] = b, a
                    swapped = True
        columns.append(list(current))
    return torch.tensor(columns, dtype=torch.long).t().contiguous()


def _gaussian_smooth(x: "torch.Tensor", sigma: float) -> "torch.Tensor":
    """Smooth `[K, T]` along time with a Gaussian of `sigma` frames (edges replicated)."""
    import torch

    if sigma < 0.5 or x.shape[-1] < 2:
        return x
    radius = min(int(math.ceil(3 * sigma)), x.shape[-1] - 1)
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    padded = torch.nn.functional.pad(x[:, None, :], (radius, radius), mode="replicate")
    return torch.nn.functional.conv1d(padded, kernel)[:, 0, :]


def _pack(centres: "torch.Tensor", widths: "torch.Tensor") -> "torch.Tensor":
    """Left edges `[K, T]` of intervals in the given order, as near their centres as a sweep each way allows, not
    overlapping and inside [0, 1] (widths per frame must sum to ≤ 1)."""
    import torch

    lefts = (centres - widths / 2).clone()
    lefts[0] = lefts[0].clamp(min=0)
    for i in range(1, lefts.shape[0]):  # push right what overlaps its left neighbour
        lefts[i] = torch.maximum(lefts[i], lefts[i - 1] + widths[i - 1])
    lefts[-1] = torch.minimum(lefts[-1], 1 - widths[-1])
    for i in range(lefts.shape[0] - 2, -1, -1):  # then pull back left what sticks out on the right
        lefts[i] = torch.minimum(lefts[i], lefts[i + 1] - widths[i])
    return lefts.clamp(min=0.0)


def _centroid(mono: "torch.Tensor", rate: int) -> float:
    """Spectral centroid (Hz) of a whole signal, from its averaged power spectrum."""
    import torch

    n_fft = 2048
    x = mono.float()
    if x.shape[-1] < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
    frames = x.unfold(-1, n_fft, n_fft) * torch.hann_window(n_fft)
    power = torch.fft.rfft(frames, dim=-1).abs().square().mean(dim=0)
    freqs = torch.linspace(0, rate / 2, power.shape[-1])
    return float((power * freqs).sum() / power.sum().clamp(min=1e-20))


# -- layout files --------------------------------------------------------------------------------------------------

_SOURCE_KEYS = {"label", "keyframes", "box"}
_KEYFRAME_KEYS = {"t", "frame", "box"}


class FromFile:
    """Keyframed boxes read from a JSON or YAML file (format in this module's docstring and docs/layouts.md)."""

    name = "file"
    max_sources: int | None = None

    def __init__(self, path: Any = None) -> None:
        if path is None or str(path).strip() == "":
            raise UsageError("layout file needs the file to read: --layout-opt path=boxes.json (or .yaml)")
        self.path = Path(str(path)).expanduser()
        self.sources = _read_layout_file(self.path)  # [(label or None, [(kind, position, box)])]

    def plan(self, stems: Stems, num_frames: int, ctx: "RunContext | None" = None) -> Layout:
        import numpy as np

        count = len(stems)
        check_count(self.name, self.max_sources, count)
        if len(self.sources) != count:
            raise UsageError(
                f"{self.path} places {len(self.sources)} source(s) but there are {count} "
                f"({', '.join(stems.labels)}): give one entry per source"
            )
        entries = self._match(stems.labels, ctx)
        frames = max(1, num_frames)
        fps = frames / max(stems.sources[0].duration, 1e-9)
        positions = np.arange(frames, dtype=np.float64)
        boxes: list[list[Box]] = []
        for index, (label, keyframes) in enumerate(entries):
            at = np.array([pos * fps if kind == "t" else pos for kind, pos, _ in keyframes])
            coords = np.array([box for _, _, box in keyframes], dtype=np.float64)  # [keys, 4]
            order = np.argsort(at, kind="stable")
            at, coords = at[order], coords[order]
            same = np.flatnonzero(np.isclose(np.diff(at), 0.0, atol=1e-6))
            if same.size:  # a t and a frame keyframe at one instant: which box holds there is ambiguous
                a, b = (keyframes[order[j]] for j in (same[0], same[0] + 1))
                raise UsageError(
                    f"{self.path}: source {label or index} has two keyframes at the same instant ({_key(a)} and "
                    f"{_key(b)}, at {fps:g} frames per second): keep one of them"
                )
            # np.interp holds the end values outside the keyframes, as the format promises.
            track = np.stack([np.interp(positions, at, coords[:, i]) for i in range(4)], axis=1)
            boxes.append([tuple(float(v) for v in row) for row in track])
        return Layout(boxes=boxes, labels=stems.labels, planner=self.name)

    def _match(self, labels: list[str], ctx: "RunContext | None") -> list[tuple[str | None, list]]:
        named = [label for label, _ in self.sources]
        if all(named) and sorted(named) == sorted(labels) and len(set(labels)) == len(labels):
            by_label = dict(self.sources)
            return [(label, by_label[label]) for label in labels]
        if any(named) and ctx is not None:
            ctx.warn(
                f"layout file {self.path}: its labels ({', '.join(str(n) for n in named)}) do not match the sources "
                f"({', '.join(labels)}), so its entries are used in order"
            )
        return list(self.sources)


def _read_layout_file(path: Path) -> list[tuple[str | None, list[tuple[str, float, Box]]]]:
    if not path.is_file():
        raise UsageError(f"layout file {path} does not exist (give an existing JSON or YAML file with path=...)")
    text = path.read_text(encoding="utf-8", errors="replace")
    data = _parse(path, text)
    if isinstance(data, dict) and set(data) - {"sources"}:
        extra = ", ".join(sorted(str(k) for k in set(data) - {"sources"}))
        raise UsageError(f"{path}: unknown top-level key(s) {extra}; the file holds {{\"sources\": [...]}}")
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(sources, list) or not sources:
        raise UsageError(f'{path}: expected {{"sources": [...]}} with one entry per source (see docs/layouts.md)')
    parsed = []
    labels: list[str] = []
    for i, entry in enumerate(sources):
        where = f"{path}: sources[{i}]"
        if not isinstance(entry, dict):
            raise UsageError(f"{where} must be a mapping with keyframes or box")
        unknown = set(entry) - _SOURCE_KEYS
        if unknown:
            raise UsageError(f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                             f"(allowed: {', '.join(sorted(_SOURCE_KEYS))})")
        label = entry.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise UsageError(f"{where}.label must be a non-empty string, got {label!r}")
        if label in labels:
            raise UsageError(f"{where}.label {label!r} appears twice")
        if label:
            labels.append(label)
        if ("keyframes" in entry) == ("box" in entry):
            raise UsageError(f"{where} needs either keyframes (a list) or a single box, not both or neither")
        if "box" in entry:
            parsed.append((label, [("frame", 0.0, _box(entry["box"], f"{where}.box"))]))
            continue
        keyframes = entry["keyframes"]
        if not isinstance(keyframes, list) or not keyframes:
            raise UsageError(f"{where}.keyframes must be a non-empty list of {{t or frame, box}}")
        keys = [_keyframe(k, f"{where}.keyframes[{j}]") for j, k in enumerate(keyframes)]
        for kind in ("t", "frame"):
            seen = [pos for k, pos, _ in keys if k == kind]
            if len(seen) != len(set(seen)):
                raise UsageError(f"{where}.keyframes has two keyframes at the same {kind}")
        parsed.append((label, keys))
    return parsed


def _parse(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:  # JSONDecodeError, or an integer longer than Python's 4300-digit limit
            raise UsageError(f"{path} is not valid JSON: {_short_error(exc)}") from None
    if suffix not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON: try YAML, which also reads JSON-like text
    try:
        import yaml
    except ImportError:
        raise ComponentUnavailableError(
            f"reading the YAML layout {path} needs PyYAML (pip install pyyaml); or write it as JSON"
        ) from None
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise UsageError(f"{path} is neither valid JSON nor valid YAML: {_short_error(exc)}") from None


def _short_error(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _keyframe(entry: Any, where: str) -> tuple[str, float, Box]:
    if not isinstance(entry, dict):
        raise UsageError(f"{where} must be a mapping like {{t: 0.0, box: [x0, y0, x1, y1]}}")
    unknown = set(entry) - _KEYFRAME_KEYS
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))} (allowed: t, frame, box)")
    if ("t" in entry) == ("frame" in entry):
        raise UsageError(f"{where} needs exactly one of t (seconds) or frame (index)")
    if "box" not in entry:
        raise UsageError(f"{where} has no box")
    if "t" in entry:
        t = _finite(entry["t"])
        if t is None or t < 0:
            raise UsageError(f"{where}.t must be a time in seconds ≥ 0, got {_shown(entry['t'])}")
        return "t", t, _box(entry["box"], f"{where}.box")
    frame = entry["frame"]
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0 or _finite(frame) is None:
        raise UsageError(f"{where}.frame must be a whole frame index ≥ 0, got {_shown(frame)}")
    return "frame", float(frame), _box(entry["box"], f"{where}.box")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _key(keyframe: tuple[str, float, Box]) -> str:
    kind, pos, _ = keyframe
    return f"t={pos:g} s" if kind == "t" else f"frame {int(pos)}"


def _finite(value: Any) -> float | None:
    """`value` as a finite float, or None for anything else (a bool, a string, NaN, a 400-digit integer)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _box(value: Any, where: str) -> Box:
    numbers = [_finite(v) for v in value] if isinstance(value, (list, tuple)) and len(value) == 4 else []
    if numbers and None not in numbers:
        x0, y0, x1, y1 = numbers  # type: ignore[misc]
        if 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1:
            return x0, y0, x1, y1
    raise UsageError(
        f"{where} must be [x0, y0, x1, y1] in [0, 1] with x0 < x1 and y0 < y1 (fractions of the frame), "
        f"got {_shown(value)}"
    )
