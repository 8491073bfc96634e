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
            summary="Asteroid models (ConvTasNet, DPRNN, SuDORMRF) from a local package or the hub",
            packages=("asteroid",),
            gpu="optional",
            license="MIT (code); each pretrained model has its own license (see its hub page)",
            options={
                "model": "a model package saved by asteroid (.pth/.bin) or a hub id "
                         "(default JorisCos/ConvTasNet_Libri2Mix_sepclean_16k, downloaded when online)",
                "trust_pickle": "true: allow a package that needs full unpickling (only for files you trust)",
            },
        )
    )
