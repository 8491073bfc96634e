"""Atomic outputs: everything is written into a staging folder beside the target, then moved into place.

A crash or Ctrl-C before `commit()` leaves the output folder as it was (the staging folder is removed); the rename of
each finished file is atomic, so `video.mp4` is either the old complete file or the new complete file, never half.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from maestro.errors import MaestroError


class OutputFolder:
    def __init__(self, target: Path) -> None:
        self.target = target
        try:
            target.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=".maestro-partial-", dir=target))
        except OSError as exc:
            raise MaestroError(
                f"cannot write to the output folder {target}: {exc.strerror or exc}. Choose another with -o DIR."
            ) from exc

    def path(self, name: str) -> Path:
        """Where to write `name` (a file, or a folder like `stems`) while the run is in progress."""
        return self.staging / name

    def commit(self) -> dict[str, Path]:
        """Move every staged entry into the target, replacing older ones; returns final paths."""
        final: dict[str, Path] = {}
        for entry in sorted(self.staging.iterdir()):
            dest = self.target / entry.name
            if entry.is_dir():
                old = None
                if dest.exists():
                    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                    os.replace(dest, old)
                os.replace(entry, dest)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(entry, dest)
            final[entry.name] = dest
        self.discard()
        return final

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
