"""Registers the `asteroid` separator. Cheap: asteroid and torch load only when the separator is used."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec


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
            options={
                "model": "a model package file, or a hub / Zenodo id "
                "(default JorisCos/ConvTasNet_Libri2Mix_sepclean_16k)",
                "weights": "a local model package (the dict asteroid's model.serialize() gives, saved with torch.save)",
                "download": "let asteroid download a missing hub model (default false; needs internet)",
                "trust_pickle": "load packages that hold Python objects beyond tensors (weights_only=False; "
                "only for files you trust; default false)",
                "sample_rate": "the model's rate in Hz, for packages that do not record it",
                "segment": "seconds per chunk for long inputs (default 20; 0 = whole input at once)",
            },
        )
    )
