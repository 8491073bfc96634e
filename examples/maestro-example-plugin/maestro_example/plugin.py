"""Registration only: cheap, no torch. Maestro imports `maestro_example.components` when a component is used."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec


@hookimpl
def register_separators(register):
    register(
        ComponentSpec(
            name="bands",
            kind="separator",
            factory="maestro_example.components:BandSplit",
            summary="splits the mixture into K frequency bands (low to high) — an example, not a real separator",
            options={"crossover": "lowest band edge in Hz (default 250); edges double from there"},
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
