"""The contract between the core and a component, enforced: every value a component hands back is checked here.

Each `check_*` raises `ContractError` with what was wrong; `calling(spec, action)` turns that, or any exception raised
inside a plugin's component, into a `PluginError` that names the component, its plugin and its distribution. An
exception inside one of Maestro's own components is Maestro's bug and stays one (the CLI reports it as internal).
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, Iterator

from maestro.errors import MaestroError, PluginError

if TYPE_CHECKING:
    from maestro.registry import ComponentSpec
    from maestro.types import Audio

BUILTIN_DISTRIBUTION = "maestro"


class ContractError(Exception):
    """A component's value breaks the contract of its kind (the message says how)."""


def who(spec: "ComponentSpec") -> str:
    """"separator 'bands' from maestro-example-plugin 0.1 (plugin example)": enough to know whom to tell."""
    kind = spec.kind.replace("_", " ")
    dist = spec.distribution or spec.plugin or "?"
    text = f"{kind} {spec.name!r} from {dist} {spec.version}".rstrip()
    if spec.plugin and spec.plugin != dist:
        text += f" (plugin {spec.plugin})"
    return text


@contextlib.contextmanager
def calling(spec: "ComponentSpec", action: str) -> Iterator[None]:
    """Run a component's code; a contract breach or a crash in a plugin becomes a `PluginError` naming it.

    A `MaestroError` the component raised on purpose (bad option, unusable input) passes through unchanged: its
    message is already for the user.
    """
    try:
        yield
    except MaestroError:
        raise
    except ContractError as exc:
        if spec.distribution == BUILTIN_DISTRIBUTION:
            raise RuntimeError(f"{who(spec)} broke the component contract in {action}: {exc}") from exc
        raise PluginError(f"{who(spec)} broke the component contract in {action}: {exc}. "
                          "Report it to the plugin's authors.") from exc
    except Exception as exc:  # noqa: BLE001 - whatever a plugin raises, the user learns whose it was
        if spec.distribution == BUILTIN_DISTRIBUTION:
            raise
        raise PluginError(f"{who(spec)} failed in {action}: {type(exc).__name__}: {exc}. "
                          "Report it to the plugin's authors (--debug shows the traceback).") from exc


# -- what a factory returns ------------------------------------------------------------------------------------------

def check_component(kind: str, component: Any) -> None:
    """The built object has what its kind needs (the protocols in maestro.components)."""
    from maestro import components

    protocol = components.PROTOCOLS[kind]
    if kind == "attention_hook":
        if not callable(component):
            raise ContractError(f"the factory returned {_kind(component)}, which is not callable as hook(q, k, v, site)")
        return
    missing = [name for name in components.protocol_members(protocol) if not hasattr(component, name)]
    if missing:
        raise ContractError(f"the factory returned {_kind(component)}, which lacks {', '.join(missing)} "
                            f"(a {kind.replace('_', ' ')} needs {', '.join(components.protocol_members(protocol))})")


def guarded_hook(spec: "ComponentSpec", hook: Any) -> Any:
    """The hook as the backbone will call it: a crash or an output of the wrong shape names the hook's plugin."""

    def call(q: Any, k: Any, v: Any, site: Any) -> Any:
        with calling(spec, f"attention at {getattr(site, 'layer', '?')}"):
            out = hook(q, k, v, site)
            if getattr(out, "shape", None) != q.shape or getattr(out, "dtype", None) != q.dtype:
                raise ContractError(f"returned {_shape(out)} ({getattr(out, 'dtype', '?')}) for queries of "
                                    f"shape {tuple(q.shape)} ({q.dtype})")
            return out

    call.__wrapped__ = hook  # type: ignore[attr-defined]
    # What the hook asks the backbone for (hookpoint.reads_replaced_rows) must show through the wrapper.
    call.reads_replaced_rows = bool(getattr(hook, "reads_replaced_rows", False))  # type: ignore[attr-defined]
    return call


# -- stage values -----------------------------------------------------------------------------------------------------

def check_stems(stems: Any, *, mixture: "Audio | None", sources: int | None, max_sources: int | None = None) -> None:
    """K stems (the number asked for), each as long as the mixture, at its rate, finite, with its channels (or
    mono). `mixture` is None for per-source inputs, where the stems only have to agree with each other."""
    from maestro.types import Audio, Stems

    _expect(stems, Stems, "Stems")
    if not stems.sources:
        raise ContractError("returned no stems")
    if sources is not None and len(stems.sources) != sources:
        raise ContractError(f"returned {len(stems.sources)} stems, {sources} were asked for")
    if max_sources is not None and len(stems.sources) > max_sources:
        raise ContractError(f"returned {len(stems.sources)} stems, more than the {max_sources} it declares")
    reference = mixture if mixture is not None else stems.mixture
    _expect(stems.mixture, Audio, "Stems.mixture as Audio")
    for i, stem in enumerate(stems.sources, start=1):
        _expect(stem, Audio, f"stem {i} as Audio")
        _check_samples(stem, f"stem {i} ({stem.label!r})")
        if stem.sample_rate != reference.sample_rate:
            raise ContractError(f"stem {i} ({stem.label!r}) is at {stem.sample_rate} Hz, the mixture at "
                                f"{reference.sample_rate} Hz (resample inside the separator)")
        if stem.num_samples != reference.num_samples:
            raise ContractError(f"stem {i} ({stem.label!r}) has {stem.num_samples} samples, the mixture "
                                f"{reference.num_samples}")
        if stem.channels not in (1, reference.channels):
            raise ContractError(f"stem {i} ({stem.label!r}) has {stem.channels} channels, the mixture "
                                f"{reference.channels}")
        if isinstance(stem.padding, bool) or not isinstance(stem.padding, int) or \
                not 0 <= stem.padding < stem.num_samples:
            raise ContractError(f"stem {i} ({stem.label!r}) says padding={stem.padding!r}: it must be a whole number "
                                f"of samples, at least 0 and less than its {stem.num_samples}")
    _check_samples(stems.mixture, "the mixture")


def check_tokens(tokens: Any, source: "Audio", dim: int | None = None) -> None:
    """features [clips, tokens, dim], finite, one (start, end) per clip, in order, inside the source."""
    import torch

    from maestro.types import Tokens

    _expect(tokens, Tokens, "Tokens")
    f = tokens.features
    if not isinstance(f, torch.Tensor) or f.dim() != 3 or min(f.shape) < 1:
        raise ContractError(f"features must be a tensor [clips, tokens, dim], got {_shape(f)}")
    if not f.is_floating_point() or not torch.isfinite(f).all():
        raise ContractError("features must be finite floating-point numbers")
    if dim is not None and f.shape[-1] != dim:
        raise ContractError(f"features have dim {f.shape[-1]}, other sources' {dim}")
    times = list(tokens.clip_times)
    if len(times) != f.shape[0]:
        raise ContractError(f"{f.shape[0]} clips of features but {len(times)} clip times")
    previous = -math.inf
    for i, pair in enumerate(times):
        if len(pair) != 2 or not all(isinstance(t, (int, float)) and math.isfinite(t) for t in pair):
            raise ContractError(f"clip time {i} must be (start, end) in seconds, got {pair!r}")
        start, end = pair
        if not (0 <= start < end) or start < previous:
            raise ContractError(f"clip times must be 0 ≤ start < end, in order; clip {i} is {pair!r}")
        if start >= source.duration:
            raise ContractError(f"clip {i} starts at {start} s, after the source ends ({source.duration:.3f} s)")
        previous = start


def check_timing(timing: Any) -> tuple[int, float]:
    if not (isinstance(timing, (tuple, list)) and len(timing) == 2):
        raise ContractError(f"timing() must return (frames, fps), got {timing!r}")
    frames, fps = timing
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ContractError(f"timing() gave {frames!r} frames; it must be a whole number ≥ 1")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ContractError(f"timing() gave fps {fps!r}; it must be a positive number")
    return frames, float(fps)


def check_conditioning(cond: Any, sources: int) -> None:
    from maestro.types import Conditioning

    _expect(cond, Conditioning, "Conditioning")
    if len(cond.labels) != sources:
        raise ContractError(f"conditioning has {len(cond.labels)} labels for {sources} sources")
    # Token groups are context rows of diffusion backbones; a backbone without cross-attention has none.
    if cond.token_groups and len(cond.token_groups) != sources:
        raise ContractError(f"conditioning has {len(cond.token_groups)} token groups for {sources} sources")


def check_layout(layout: Any, sources: int, num_frames: int) -> None:
    """One box per source per frame, inside [0, 1] and non-empty."""
    from maestro.types import Layout

    _expect(layout, Layout, "Layout")
    if layout.num_sources != sources:
        raise ContractError(f"the layout has {layout.num_sources} sources' boxes, the run has {sources} sources")
    counts = {len(per_source) for per_source in layout.boxes}
    if counts != {num_frames}:
        raise ContractError(f"the layout has {sorted(counts)} frames of boxes, the video {num_frames}")
    for k, per_source in enumerate(layout.boxes):
        for f, box in enumerate(per_source):
            if len(box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box):
                raise ContractError(f"source {k} frame {f}: a box is four numbers (x0, y0, x1, y1), got {box!r}")
            x0, y0, x1, y1 = box
            if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                raise ContractError(f"source {k} frame {f}: box {tuple(box)} is empty or outside [0, 1]")


def check_video(video: Any, num_frames: int, fps: float) -> None:
    """uint8 frames [T, H, W, 3], T and fps as the backbone's timing() said."""
    import torch

    from maestro.types import Video

    _expect(video, Video, "Video")
    frames = video.frames
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[-1] != 3 or min(frames.shape) < 1:
        raise ContractError(f"frames must be a tensor [frames, height, width, 3], got {_shape(frames)}")
    if frames.dtype != torch.uint8:
        raise ContractError(f"frames must be uint8, got {frames.dtype}")
    if frames.shape[0] != num_frames:
        raise ContractError(f"the video has {frames.shape[0]} frames, timing() said {num_frames}")
    if not math.isclose(float(video.fps), fps, rel_tol=1e-6):
        raise ContractError(f"the video is at {video.fps} fps, timing() said {fps}")


def _check_samples(audio: "Audio", what: str) -> None:
    import torch

    s = audio.samples
    if not isinstance(s, torch.Tensor) or s.dim() != 2 or s.shape[0] < 1:
        raise ContractError(f"{what} must be a tensor [channels, samples], got {_shape(s)}")
    if not s.is_floating_point() or not torch.isfinite(s).all():
        raise ContractError(f"{what} must hold finite floating-point samples")
    if isinstance(audio.sample_rate, bool) or not isinstance(audio.sample_rate, int) or audio.sample_rate <= 0:
        raise ContractError(f"{what} has sample rate {audio.sample_rate!r}; it must be a whole number of Hz")


def _expect(value: Any, cls: type, what: str) -> None:
    if not isinstance(value, cls):
        raise ContractError(f"returned {_kind(value)} where {what} was expected")


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__module__}.{type(value).__qualname__}"


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else _kind(value)

