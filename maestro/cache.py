"""Stage results (stems, tokens) cached by content hash, so a re-run with another layout or backbone skips them.

Entries are plain dicts of tensors and strings saved with torch.save and read back with `weights_only=True`: a cache
file can never run code (one that tries is a miss, and is replaced). Writes go to a temp file first, so an interrupted
run never leaves a broken entry; a write that fails (full disk, read-only cache) is a warning, never a failed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def cache_root() -> Path:
    return Path(os.environ.get("MAESTRO_CACHE", Path.home() / ".cache" / "maestro"))


def content_key(*parts: Any) -> str:
    """A sha256 over tensors (their bytes, shape, dtype) and JSON-able values."""
    digest = hashlib.sha256()
    for part in parts:
        if hasattr(part, "detach"):  # a tensor
            t = part.detach().cpu().contiguous()
            digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
            digest.update(t.numpy().tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class StageCache:
    def __init__(self, root: Path | None = None, enabled: bool = True,
                 warn: Callable[[str], None] | None = None) -> None:
        self.root = (root or cache_root()) / "stages"
        self.enabled = enabled
        self.warn = warn or (lambda message: None)

    def _path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.pt"

    def load(self, stage: str, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        path = self._path(stage, key)
        if not path.is_file():
            return None
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged entry is a miss, and is replaced
            return None

    def save(self, stage: str, key: str, value: dict[str, Any]) -> None:
        if not self.enabled:
            return
        import torch

        path = self._path(stage, key)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                torch.save(value, f)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # torch reports a failed write as RuntimeError
            # Caching is an optimisation: a full disk or a read-only cache must not fail the run.
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200]
            self.warn(f"could not save the {stage} cache in {self.root} ({reason}); the run goes on, and the next "
                      "one computes this stage again")
