"""The ImageBind matrix of `maestro eval` on a tiny random ImageBind: the plumbing, not the meaning."""

from __future__ import annotations

import math

import pytest

from conftest import REPO, imagebind_package
from test_eval import make_run

pytest.importorskip("cv2")
pytest.importorskip("librosa")

AUDIO = REPO / "examples" / "audio"


@pytest.mark.slow
def test_similarity_matrix_on_a_tiny_random_imagebind(maestro, tmp_path):
    """Random weights: this checks the inputs ImageBind gets and the K×K shape, not what the numbers mean."""
    pytest.importorskip("maestro_imagebind")
    _, imagebind_model = imagebind_package()
    from maestro.eval.imagebind import similarity_matrix
    from maestro.eval.run_folder import read_run_folder

    tiny = {f"{m}_{k}": v for m in ("vision", "audio", "text", "depth", "thermal", "imu")
            for k, v in (("embed_dim", 32), ("num_blocks", 1), ("num_heads", 2))}
    model = imagebind_model.ImageBindModel(out_embed_dim=16, **tiny).eval()
    out = make_run(maestro, tmp_path / "run", AUDIO / "piano.wav", AUDIO / "thunder.wav", layout="TD")
    matrix = similarity_matrix(read_run_folder(out), model)
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert all(math.isfinite(v) and -1.0 <= v <= 1.0 for row in matrix for v in row)
    assert matrix[0] != matrix[1] and [r[0] for r in matrix] != [r[1] for r in matrix]  # sources and regions differ
