"""Built-in video backbones."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec


@hookimpl
def register_backbones(register):
    register(
        ComponentSpec(
            name="storyboard",
            kind="backbone",
            factory="maestro.generate.storyboard:Storyboard",
            summary="PREVIEW renderer, not a generative model: each region drawn only from its own source's tokens",
            options={"width": Option(int, 512, "frame width in pixels", ge=16, le=4096),
                     "height": Option(int, 320, "frame height in pixels", ge=16, le=4096),
                     "fps": Option(float, 8.0, "frames per second", ge=0.5, le=120)},
            preview=True,
            license="Apache-2.0",
        )
    )
