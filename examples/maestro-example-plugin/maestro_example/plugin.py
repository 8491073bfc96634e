"""Registration only: cheap, no torch. Maestro imports `maestro_example.components` when a component is used."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec


@hookimpl
def register_separators(register):
    register(
        ComponentSpec(
            name="bands",
            kind="separator",
            factory="maestro_example.components:BandSplit",
            summary="splits the mixture into K frequency bands (low to high) — an example, not a real separator",
            # Declared once: type, default, help and range. Maestro converts and checks `--separator-opt crossover=300`
            # before any work, and the factory receives a float.
            options={"crossover": Option(float, 250.0, "lowest band edge in Hz; edges double from there",
                                         ge=1, le=20000)},
            max_sources=8,
            license="Apache-2.0",
        )
    )


@hookimpl
def register_layout_planners(register):
    register(
        ComponentSpec(
            name="diagonal",
            kind="layout_planner",
            factory="maestro_example.components:Diagonal",
            summary="sources on the diagonal, top-left to bottom-right",
            license="Apache-2.0",
        )
    )
