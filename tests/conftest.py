"""Test-wide settings: never touch the network, keep caches inside the test's temporary folder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "maestro-cache"
    monkeypatch.setenv("MAESTRO_CACHE", str(cache))
    monkeypatch.setenv("MAESTRO_WEIGHTS", str(tmp_path_factory.getbasetemp() / "maestro-weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf-home"))


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    path = SHARED / "audio"
    if not path.is_dir():
        pytest.skip("../shared/audio is not beside the repo")
    return path


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def maestro(capsys):
    """Run the `maestro` CLI in-process, as a user would type it; returns exit code and output."""
    from maestro.cli import run_main

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run_main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def write_wav(path: Path, samples, rate: int = 44100, subtype: str = "PCM_16") -> Path:
    """Write `samples` ([channels, n] or [n]) with soundfile."""
    import numpy as np
    import soundfile as sf

    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 2:
        data = data.T
    sf.write(str(path), data, rate, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def example_mix() -> Path:
    return REPO / "examples" / "audio" / "thunder_piano.wav"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models are all overhead: one torch thread is faster, and far faster on a busy 2-core machine
    (measured: 3 s against 13 ms for one tiny UNet forward). Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def imagebind_package():
    """The `imagebind` package (`data`, `imagebind_model`), importable once pytorchvideo finds torchvision's renamed
    `functional_tensor`; skips the test where it cannot be imported."""
    import sys
    import warnings

    try:
        import torchvision.transforms._functional_tensor as functional_tensor
    except ImportError:
        pytest.skip("torchvision is not installed")
    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package imports the deprecated pkg_resources
            from imagebind import data
            from imagebind.models import imagebind_model
    except ImportError as exc:
        pytest.skip(f"the imagebind package cannot be imported: {exc}")
    return data, imagebind_model
