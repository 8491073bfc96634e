"""Built-in separators, registered through the same hook as any plugin."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec


@hookimpl
def register_separators(register):
    register(
        ComponentSpec(
            name="nmf",
            kind="separator",
            factory="maestro.separate.dsp:NMFSeparator",
            summary="DSP default: harmonic/percussive NMF atoms grouped into K sources by cues, Wiener masks",
            options={
                "iterations": "NMF iterations per part (default 200)",
                "atoms": "NMF atoms per part (harmonic, percussive); 0 = 8 + 4·K (default 0)",
                "window_ms": "STFT window in milliseconds, rounded to a power of two in samples (default 46)",
                "hpss": "split harmonic and percussive parts before NMF (default true)",
                "decisiveness_weight": "grouping: weight of mask decisiveness against loudness balance (default 0.5)",
                "default_sources": "K when the run does not say (default 2)",
                "threads": "torch CPU threads for the separation; 1 is fastest for these small matrices (default 1)",
                "spatial_threshold": "use stereo direction clusters (DUET-style) when their centres are at least this "
                "many spreads apart; 0 = never (default 3)",
                "mask_floor": "share of the mixture added evenly to every stem, 0..1 (default 0.25)",
                "undecided_entropy": "mask entropy (0..1) above which no split counts as decisive and every stem is "
                "the mixture scaled by its share, with a warning (default 0.6)",
                "restarts": "NMF runs from different random starts whose masks are averaged (default 3)",
            },
            license="Apache-2.0",
        )
    )
    register(
        ComponentSpec(
            name="files",
            kind="separator",
            factory="maestro.separate.files:FileSources",
            summary="the paper's setting: one input file per source, aligned, resampled and mixed",
            license="Apache-2.0",
        )
    )
