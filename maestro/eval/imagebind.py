"""ImageBind audio–vision similarity per (source, region crop), where the ImageBind weights are on this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maestro.eval.run_folder import RunFolder

WEIGHTS_ID = "imagebind_huge"  # the weights of the `imagebind` audio encoder


def imagebind_matrix(run: "RunFolder") -> dict[str, Any]:
    from maestro import weights

    path = weights.local_path(WEIGHTS_ID)
    if path is None:
        return {"matrix": None, "reason": f"the ImageBind weights are not on this machine "
                                          f"(`maestro weights fetch {WEIGHTS_ID}`)"}
    return {"matrix": None, "reason": f"found {path}, but the vision side of ImageBind is not wired into "
                                      "`maestro eval` yet"}
