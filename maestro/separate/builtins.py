"""Built-in separators, registered through the same hook as any plugin."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec

# Grouping atoms into more sources than this finds no stable split in real recordings, and the time grows with K.
MAX_SOURCES = 8


@hookimpl
def register_separators(register):
    register(
        ComponentSpec(
            name="nmf",
            kind="separator",
            factory="maestro.separate.dsp:NMFSeparator",
            summary="DSP default: harmonic/percussive NMF atoms grouped into K sources by cues, Wiener masks",
            max_sources=MAX_SOURCES,
            options={
                "iterations": Option(int, 200, "NMF iterations per part", ge=1, le=100_000),
                "atoms": Option(int, 0, "NMF atoms per part (harmonic, percussive); 0 = 8 + 4·K", ge=0, le=1000),
                "window_ms": Option(float, 46.0, "STFT window in milliseconds, rounded to a power of two in samples",
                                    ge=4, le=1000),
                "hpss": Option(bool, True, "split harmonic and percussive parts before NMF"),
                "decisiveness_weight": Option(float, 0.5, "grouping: weight of mask decisiveness against loudness "
                                              "balance", ge=0, le=100),
                "default_sources": Option(int, 2, "K when the run does not say", ge=1, le=MAX_SOURCES),
                "threads": Option(int, 1, "torch CPU threads for the separation; 1 is fastest for these small "
                                  "matrices", ge=1, le=256),
                "spatial_threshold": Option(float, 3.0, "use stereo direction clusters (DUET-style) when their centres "
                                            "are at least this many spreads apart; 0 = never", ge=0, le=1000),
                "mask_floor": Option(float, 0.25, "share of the mixture added evenly to every stem", ge=0, le=1),
                "undecided_entropy": Option(float, 0.6, "mask entropy above which no split counts as decisive and "
                                            "every stem is the mixture scaled by its share, with a warning; 0.19 "
                                            "never lost to the mixture on the held-out pairs, at a cost in the "
                                            "mean (docs/separation.md)", ge=0, le=1),
                "restarts": Option(int, 3, "NMF runs from different random starts whose masks are averaged", ge=1,
                                   le=20),
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
