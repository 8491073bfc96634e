"""Registers the `demucs` separator. Cheap: demucs and torch load only when the separator is used."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec


@hookimpl
def register_separators(register):
    register(
        ComponentSpec(
            name="demucs",
            kind="separator",
            factory="maestro_demucs.separator:DemucsSeparator",
            summary="Demucs music source separation (htdemucs, htdemucs_ft, htdemucs_6s, mdx_extra, ...)",
            packages=("demucs",),
            gpu="optional",
            license="MIT (code and pretrained weights)",
            weights=("demucs-htdemucs",),  # the default model's file: MAESTRO_WEIGHTS or torch hub's checkpoints
            max_sources=6,  # htdemucs_6s: drums, bass, other, vocals, guitar, piano
            options={
                "name": Option(str, "htdemucs", "pretrained model name or signature (demucs_unittest: tiny, random "
                               "weights)"),
                "weights": Option(str, None, "a local model: FILE.th, FILE.safetensors, NAME.yaml, or a folder with "
                                  "NAME.yaml + model files"),
                "stems": Option(list, None, "demucs stems to output, in order, e.g. vocals,drums (K = that many, "
                                "or one more for the rest)"),
                "shifts": Option(int, 1, "random time shifts averaged, 0 = none", ge=0, le=20),
                "overlap": Option(float, 0.25, "overlap between chunks", ge=0, le=0.9),
                "segment": Option(float, None, "chunk length in seconds (none: the model's)", ge=0.1),
                "download": Option(bool, False, "let demucs download a missing model (needs internet)"),
            },
        )
    )
