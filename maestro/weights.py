"""Weight files: the catalogue in `registry/weights.toml`, where files live, download and sha256 checks.

Files from a Hugging Face repo follow the hub's cache layout (`$HF_HOME/hub/models--org--name/snapshots/*/file`), so a
copy downloaded by other tools is found. Files from a plain URL, and files the user places by hand, live in
`$MAESTRO_WEIGHTS` (default `~/.cache/maestro/weights`). Nothing here imports torch or huggingface_hub until a
download is asked for, so `maestro plugins` stays fast.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from maestro.errors import UsageError, WeightsError



@dataclass(frozen=True)
class WeightFile:
    id: str
    filename: str
    repo: str = ""  # Hugging Face repo id, or
    url: str = ""  # a plain download URL
    sha256: str = ""  # the published sha256; "" when none is published: the file is reported as unverified
    sha256_prefix: str = ""  # where only the start of the hash is published (demucs names files by it)
    size: int = 0  # bytes, 0 when unknown; with a published hash, a file of another size is corrupt unhashed
    license: str = ""
    used_by: str = ""
    note: str = ""

    @property
    def source(self) -> str:
        if self.repo:
            return f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"
        return self.url

    @property
    def manual_path(self) -> Path:
        return weights_dir() / self.filename


def weights_dir() -> Path:
    return Path(os.environ.get("MAESTRO_WEIGHTS", Path.home() / ".cache" / "maestro" / "weights"))


def hub_cache() -> Path:
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def catalogue() -> dict[str, WeightFile]:
    """Every known weight file: Maestro's registry data, then the files plugins declare (register_weights)."""
    return {**_registry_files(), **_plugin_files}


@lru_cache(maxsize=1)
def _registry_files() -> dict[str, WeightFile]:
    from maestro.registry_data import read_toml

    return {key: WeightFile(id=key, **value) for key, value in read_toml("weights.toml").items()}


_plugin_files: dict[str, WeightFile] = {}


def add_plugin_files(files: list[WeightFile]) -> None:
    """Files a plugin declares; an id that is already known keeps its first declaration."""
    for wf in files:
        if wf.id in _registry_files() or wf.id in _plugin_files:
            raise ValueError(f"weight file id {wf.id!r} is already declared")
    for wf in files:
        _plugin_files[wf.id] = wf


def entry(file_id: str) -> WeightFile:
    known = catalogue()
    if file_id not in known:
        raise UsageError(f"no weight file {file_id!r} in the registry; known: {', '.join(sorted(known)) or 'none'}")
    return known[file_id]


def local_path(file_id: str) -> Path | None:
    """Where the file is on this machine, or None. Cheap: looks at paths only."""
    wf = catalogue().get(file_id)
    if wf is None:
        return None
    if wf.manual_path.is_file():
        return wf.manual_path
    if wf.repo:
        snapshots = hub_cache() / ("models--" + wf.repo.replace("/", "--")) / "snapshots"
        for candidate in sorted(snapshots.glob(f"*/{wf.filename}")):
            if candidate.is_file():
                return candidate
    return None


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: Path) -> str:
    """sha256 of `path`, remembered per (path, size, mtime) so multi-GB checkpoints are hashed once."""
    import json

    stat = path.stat()
    memo = Path(os.environ.get("MAESTRO_CACHE", Path.home() / ".cache" / "maestro")) / "sha256.json"
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = sha256_of(path)
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(json.dumps(known))
        except OSError:
            pass  # a read-only cache only costs a re-hash next time
    return known[key]


# What `verify` can say about a file, and whether `maestro weights verify` counts it as a failure.
VERIFY_STATES = {
    "ok": "matches its published sha256",
    "ok-prefix": "matches the published start of its sha256",
    "unverified": "unverified (no published sha256)",
    "missing": "not on this machine",
    "corrupt": "does not match its published sha256 or size",
}


def verify(file_id: str) -> tuple[str, Path | None]:
    """(one of VERIFY_STATES, path): the file's size and sha256 (or sha256 prefix) against the registry's."""
    wf = entry(file_id)
    path = local_path(file_id)
    if path is None:
        return "missing", None
    if (wf.sha256 or wf.sha256_prefix) and wf.size and path.stat().st_size != wf.size:
        return "corrupt", path  # a published size is checked with its hash: a wrong one needs no hashing
    if wf.sha256:
        return ("ok" if cached_sha256(path) == wf.sha256.lower() else "corrupt"), path
    if wf.sha256_prefix:
        return ("ok-prefix" if cached_sha256(path).startswith(wf.sha256_prefix.lower()) else "corrupt"), path
    return "unverified", path


def where_to_put_short(file_id: str) -> str:
    """For `maestro plugins`: the one path a component reads `file_id` from, and how to get it there."""
    wf = catalogue().get(file_id)
    if wf is None:
        return f"{file_id} (declared by no registry or plugin)"
    if wf.repo:
        return f"{wf.filename} from {wf.repo} (`maestro weights fetch {wf.id}`, or place it at {wf.manual_path})"
    return f"{wf.manual_path} (`maestro weights fetch {wf.id}`)"


def where_to_put(wf: WeightFile) -> str:
    return (
        f"Download {wf.source} and place it at {wf.manual_path} (or set MAESTRO_WEIGHTS to its folder), "
        f"or run `maestro weights fetch {wf.id}` on a machine that is online."
    )


def resolve(file_id: str, path: str | os.PathLike[str] | None = None) -> Path:
    """A usable local file for `file_id`: the user's `path` if given, else the verified cached copy."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"weight file {p} does not exist")
        return p
    wf = entry(file_id)
    status, found = verify(file_id)
    if status == "missing" or found is None:
        raise WeightsError(f"the weights {wf.id!r} ({wf.filename}) are not on this machine. {where_to_put(wf)}")
    if status == "corrupt":
        expected = wf.sha256 or f"{wf.sha256_prefix}..."
        size = f" and size {wf.size} bytes" if wf.size else ""
        raise WeightsError(f"{found} does not match its sha256 {expected}{size} (as published): delete it and "
                           "fetch it again.")
    return found


def fetch(file_id: str) -> Path:
    """Download `file_id` (hub cache for Hugging Face files, MAESTRO_WEIGHTS for URLs), then verify it."""
    wf = entry(file_id)
    if local_path(file_id) is not None:
        return resolve(file_id)
    try:
        if wf.repo:
            from huggingface_hub import hf_hub_download

            hf_hub_download(repo_id=wf.repo, filename=wf.filename)
        else:
            _download(wf.url, wf.manual_path)
    except Exception as exc:  # noqa: BLE001 - any network failure becomes the same advice
        raise WeightsError(f"could not download {wf.id!r} ({type(exc).__name__}: {exc}). {where_to_put(wf)}") from exc
    return resolve(file_id)


def _download(url: str, target: Path) -> None:
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response:
        # File hosts answer some requests (quota, confirmation) with a web page: never save that as weights.
        if response.headers.get_content_type() == "text/html":
            raise WeightsError(f"{url} answered with a web page, not the file")
        with partial.open("wb") as out:
            while block := response.read(1 << 22):
                out.write(block)
    os.replace(partial, target)  # never leave a half-downloaded file under the final name
