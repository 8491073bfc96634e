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
            summary="DSP default: NMF of the spectrogram, components grouped into K sources, Wiener masks",
            options={"iterations": "NMF iterations (default 200)"},
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
