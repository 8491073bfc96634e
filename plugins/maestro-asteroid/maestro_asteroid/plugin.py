"""Registers the `asteroid` separator. Cheap: asteroid and torch load only when the separator is used."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec

DEFAULT_WEIGHTS = "asteroid-convtasnet-libri2mix-16k"  # registry id of the default model's file (as separator.py)


@hookimpl
def register_separators(register):
    register(
        ComponentSpec(
            name="asteroid",
            kind="separator",
            factory="maestro_asteroid.separator:AsteroidSeparator",
            summary="Asteroid speech/sound separation models (ConvTasNet, DPRNN, SuDORMRF) from a local package or hub",
            packages=("asteroid",),
            gpu="optional",
            license="MIT (asteroid code); each model's weights carry the license on their model card",
            weights=(DEFAULT_WEIGHTS,),  # the default model's file: MAESTRO_WEIGHTS or the Hugging Face hub cache
            options={
                "model": Option(str, "JorisCos/ConvTasNet_Libri2Mix_sepclean_16k", "a model package file, or a hub / "
                                "Zenodo id"),
                "weights": Option(str, None, "a local model package (the dict asteroid's model.serialize() gives, "
                                  "saved with torch.save)"),
                "download": Option(bool, False, "let asteroid download a missing hub model (needs internet)"),
                "sample_rate": Option(float, None, "the model's rate in Hz, for packages that do not record it",
                                      ge=1000, le=384000),
                "segment": Option(float, 20.0, "seconds per chunk for long inputs (0 = whole input at once)", ge=0,
                                  le=3600),
            },
        )
    )
