"""Registers the `demucs` separator. Cheap: demucs and torch load only when the separator is used."""

from maestro.hookspecs import hookimpl
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
            options={
                "name": "pretrained model name or signature (default htdemucs; demucs_unittest: tiny, random weights)",
                "weights": "a local model: FILE.th, FILE.safetensors, NAME.yaml, or a folder with NAME.yaml "
                "+ model files",
                "stems": "comma list of demucs stems to output, in order, e.g. vocals,drums (K = that many, "
                "or one more for the rest)",
                "shifts": "random time shifts averaged, 0 = none (default 1)",
                "overlap": "overlap between chunks, 0..0.9 (default 0.25)",
                "segment": "chunk length in seconds (default: the model's)",
                "download": "let demucs download a missing model (default false; needs internet)",
            },
        )
    )
