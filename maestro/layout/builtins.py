"""Built-in layout planners."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec


@hookimpl
def register_layout_planners(register):
    for name, factory, summary in [
        ("LR", "maestro.layout.planners:LeftRight", "two sources side by side, left and right halves"),
        ("TD", "maestro.layout.planners:TopDown", "two sources stacked: top 40 %, bottom 60 % (the paper's TD)"),
        ("grid", "maestro.layout.planners:Grid", "any number of sources in a near-square grid"),
        ("auto", "maestro.layout.planners:Auto", "boxes follow each source's stereo panning and loudness over time"),
        ("file", "maestro.layout.planners:FromFile", "keyframed boxes from a JSON or YAML file (path=FILE)"),
    ]:
        register(ComponentSpec(name=name, kind="layout_planner", factory=factory, summary=summary, license="Apache-2.0"))
