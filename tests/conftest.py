"""Test-wide settings: never touch the network, keep caches inside the test's temporary folder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
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


def option_flags(flag: str, options: dict) -> list[str]:
    """`{"steps": "2"}` → `[flag, "steps=2", ...]`: component options as `maestro run` takes them."""
    return [arg for key, value in options.items() for arg in (flag, f"{key}={value}")]


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


def fake_distribution(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A minimal installed distribution: a dist-info with entry points, plus its modules, on `site`."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[maestro.plugins]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


def maestro_subprocess(*args: str, site: Path | None = None, extra_path: str = "", env: dict | None = None,
                       cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`python -m maestro ARGS` in a fresh process, with `site` (fake distributions) first on the path."""
    full_env = {**os.environ, **(env or {})}
    paths = [p for p in (str(site) if site else "", extra_path, full_env.get("PYTHONPATH", "")) if p]
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    full_env["COLUMNS"] = "200"  # rich wraps tables at the terminal width
    return subprocess.run([sys.executable, "-m", "maestro", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)
