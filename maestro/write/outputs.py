"""All-or-nothing outputs into a folder Maestro shares with its user.

The rules (docs/architecture.md, "Output folders"):

* Ownership: Maestro owns only what an earlier Maestro manifest in the folder lists (`manifest.json`'s "outputs":
  every file with its size). Anything else in the way of a new output is the user's: the run stops with an error
  naming it, and `--force` replaces it. Nothing else in the folder is ever touched.
* One run per folder: the new run's outputs replace all of the old run's, and old outputs the new run does not
  produce (an `overlay.mp4`) are removed, so the folder never mixes two runs.
* Atomic: outputs are written into a staging folder `.maestro-partial-*` inside the target (same file system), then
  swapped in by renames: old entries move into a backup inside the staging folder, new ones move in, the manifest
  last: its arrival is the commit point. Any failure before it moves everything back. A journal in the staging
  folder lets the next run undo a swap that a SIGKILL or power cut interrupted before that point; staging folders of
  dead runs (by process id) are removed.
* Locked: a run holds an exclusive `flock` on the target folder from start to commit, so a second run into the same
  folder waits a few seconds and then refuses clearly.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from maestro import interrupts
from maestro.errors import MaestroError, UsageError

STAGING_PREFIX = ".maestro-partial-"
MANIFEST = "manifest.json"
# What a run normally produces; checked when the folder is opened, so foreign files fail a run before its work.
USUAL_OUTPUTS = ("manifest.json", "video.mp4", "layout.png", "stems")
# Files Maestro keeps inside a staging folder (never moved into the target).
_PID_FILE, _JOURNAL, _COMMITTED, _BACKUP = ".pid", ".journal.json", ".committed", ".backup"
LOCK_WAIT_SECONDS = 5.0


class OutputFolder:
    def __init__(self, target: Path, force: bool = False, lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        if str(target) == "":
            raise UsageError("the output folder must not be empty: give -o DIR")
        self.target = Path(target)
        self.force = force
        self._lock_fd: int | None = None
        self.staging = self.target / (STAGING_PREFIX + "unset")
        # The folders this run creates, innermost first: a run that fails before committing removes them again.
        self._created = [p for p in (self.target, *self.target.parents) if not p.exists()]
        try:
            self.target.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock(self.target, lock_wait)
            recover_dead_runs(self.target)
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.target))
            (self.staging / _PID_FILE).write_text(str(os.getpid()))
            self._check_in_the_way([n for n in USUAL_OUTPUTS if _exists(self.target / n)])
        except OSError as exc:
            self.discard()
            raise MaestroError(
                f"cannot write to the output folder {self.target}: {exc.strerror or exc}. Choose another with -o DIR."
            ) from exc
        except BaseException:
            self.discard()
            raise

    def path(self, name: str) -> Path:
        """Where to write `name` (a file, or a folder like `stems`) while the run is in progress."""
        return self.staging / name

    def commit(self) -> dict[str, Path]:
        """Swap every staged entry into the target, all or nothing; returns the final paths."""
        try:
            interrupts.check()  # a Ctrl-C whose first raise was dropped must not let the run commit
            names = sorted(e.name for e in self.staging.iterdir() if e.name not in _INTERNAL)
            self._check_in_the_way([n for n in names if _exists(self.target / n)])
            _record_outputs(self.staging, names)
            _sync_tree(self.staging)
            old = owned_outputs(self.target)
            # The old run's outputs that this run does not produce go too (if still exactly as Maestro wrote them).
            leftovers = {Path(rel).parts[0] for rel in old} - set(names)
            leftovers = {n for n in leftovers if _exists(self.target / n) and _is_owned(self.target, n, old)}
            aside = sorted({n for n in names if _exists(self.target / n)} | leftovers, key=_manifest_first)
            incoming = sorted(names, key=_manifest_last)
            _write_synced(self.staging / _JOURNAL, json.dumps({"aside": aside, "incoming": incoming}))
            _fsync_dir(self.staging)
            _swap(self.target, self.staging, aside, incoming)
        except RollbackFailed:
            self._unlock()  # the staging folder holds the old outputs now: never delete it
            raise
        except OSError as exc:
            self.discard()
            raise _write_error(exc, self.target) from exc
        except BaseException:
            self.discard()
            raise
        self._created = []  # committed: the folders now hold this run's outputs
        self.discard()
        return {n: self.target / n for n in names}

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self._unlock()
        for folder in self._created:
            try:
                folder.rmdir()  # only if still empty
            except OSError:
                break

    def _check_in_the_way(self, present: list[str]) -> None:
        if self.force or not present:
            return
        owned = owned_outputs(self.target)
        foreign = [n for n in present if not _is_owned(self.target, n, owned)]
        if foreign:
            listed, one = ", ".join(str(self.target / n) for n in foreign), len(foreign) == 1
            raise MaestroError(
                f"{listed} {'is' if one else 'are'} in the way and not listed by a Maestro manifest in "
                f"{self.target}, so Maestro will not replace {'it' if one else 'them'}. Choose another folder with "
                f"-o DIR, or add --force to replace {'it' if one else 'them'}."
            )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None


# -- ownership -------------------------------------------------------------------------------------------------------
def owned_outputs(folder: Path) -> dict[str, int | None]:
    """{relative file path: size (None: unknown)} that the Maestro manifest in `folder` lists; {} when there is none."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(manifest, dict) or "maestro" not in manifest:
        return {}
    listed = manifest.get("outputs")
    if isinstance(listed, dict):
        files = {str(k): (v if isinstance(v, int) else None) for k, v in listed.items()}
    else:  # a manifest written before "outputs" existed: the files it describes
        files = {name: None for name in ("video.mp4", "layout.png", "overlay.mp4")}
        files.update({str(s.get("file")): None for s in manifest.get("stems", []) if isinstance(s, dict)})
    files[MANIFEST] = None
    return {k: v for k, v in files.items() if _safe_relative(k)}


def _is_owned(folder: Path, name: str, owned: dict[str, int | None]) -> bool:
    """True when the entry `name` holds only files the manifest lists, with the sizes it recorded."""
    path = folder / name
    if path.is_symlink() or not (path.is_file() or path.is_dir()):
        return False
    if path.is_file():
        return _same_file(path, owned, name)
    if not any(rel.startswith(name + "/") for rel in owned):
        return False  # a folder the manifest lists nothing in (even an empty one) is the user's
    for root, dirs, files in os.walk(path):
        for entry in dirs + files:
            rel = os.path.relpath(os.path.join(root, entry), folder)
            full = Path(root) / entry
            if full.is_symlink() or (entry in files and not _same_file(full, owned, rel)):
                return False
    return True


def _same_file(path: Path, owned: dict[str, int | None], rel: str) -> bool:
    if rel not in owned:
        return False
    size = owned[rel]
    return size is None or path.stat().st_size == size


def _record_outputs(staging: Path, names: list[str]) -> None:
    """Add "outputs" (every staged file with its size) to the staged manifest: what the next run may replace."""
    manifest_path = staging / MANIFEST
    if MANIFEST not in names:
        return
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(manifest, dict):
        return
    files: dict[str, int | None] = {}
    for name in names:
        entry = staging / name
        if entry.is_dir():
            for root, _, found in os.walk(entry):
                for f in found:
                    full = Path(root) / f
                    files[os.path.relpath(full, staging)] = full.stat().st_size
        elif name != MANIFEST:
            files[name] = entry.stat().st_size
    files[MANIFEST] = None  # it cannot record its own size
    manifest["outputs"] = dict(sorted(files.items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def _safe_relative(rel: str) -> bool:
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts and not parts[0].startswith(".maestro")


# -- the swap --------------------------------------------------------------------------------------------------------
def _swap(target: Path, staging: Path, aside: list[str], incoming: list[str]) -> None:
    """Move `aside` from target into the backup, then `incoming` from staging into target; on failure, undo."""
    backup = staging / _BACKUP
    backup.mkdir(exist_ok=True)
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for name in aside:
            os.replace(target / name, backup / name)
            moved_aside.append(name)
        for name in incoming:
            os.replace(staging / name, target / name)
            moved_in.append(name)
        _fsync_dir(target)
        _write_synced(staging / _COMMITTED, "")
    except BaseException as exc:
        try:
            _undo(target, staging, moved_aside, moved_in)
        except OSError as undo_exc:
            raise RollbackFailed(
                f"writing the outputs into {target} failed ({exc}) and so did putting the old ones back "
                f"({undo_exc}): the old outputs are in {staging / _BACKUP}; move them back by hand."
            ) from exc
        raise


class RollbackFailed(MaestroError):
    """A failed swap could not be undone; the message says where the old outputs are."""


def _undo(target: Path, staging: Path, moved_aside: list[str], moved_in: list[str]) -> None:
    for name in reversed(moved_in):
        os.replace(target / name, staging / name)
    for name in reversed(moved_aside):
        os.replace(staging / _BACKUP / name, target / name)
    _fsync_dir(target)


def recover_dead_runs(target: Path) -> None:
    """Remove the staging folders of runs that died (SIGKILL, power cut), first undoing a swap one left half done.

    Called with the folder's lock held, so no live Maestro run is writing there; a folder whose recorded process
    still lives is left alone all the same.
    """
    for staging in sorted(target.glob(STAGING_PREFIX + "*")):
        if not staging.is_dir() or staging.is_symlink() or _alive(staging):
            continue
        journal = staging / _JOURNAL
        if journal.is_file() and not (staging / _COMMITTED).exists():
            try:
                plan = json.loads(journal.read_text())
                if _manifest_landed(target, staging, plan):
                    shutil.rmtree(staging, ignore_errors=True)  # committed: only the marker was not written yet
                    continue
                # What left the staging folder is in the target now: move it back, then restore the backup.
                moved_in = [n for n in plan["incoming"] if not _exists(staging / n) and _exists(target / n)]
                moved_aside = [n for n in plan["aside"] if _exists(staging / _BACKUP / n)]
                _undo(target, staging, moved_aside, moved_in)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # keep what we cannot undo safely: the user can still recover it by hand
        shutil.rmtree(staging, ignore_errors=True)


def _manifest_landed(target: Path, staging: Path, plan: dict[str, Any]) -> bool:
    """The new manifest moves in last, so once it has left the staging folder for the target every output is in:
    the run committed, whether or not it lived to write the marker."""
    return MANIFEST in plan["incoming"] and not _exists(staging / MANIFEST) and _exists(target / MANIFEST)


def tidy(target: Path) -> None:
    """Remove the staging folders dead runs left in `target` (as the next run there would), unless a run is writing
    there now. For folders a batch skips because their run is complete."""
    try:
        fd = _lock(target, 0)
    except (MaestroError, OSError):
        return  # a live run holds the folder: it tidies up itself
    try:
        recover_dead_runs(target)
    finally:
        os.close(fd)


def _alive(staging: Path) -> bool:
    try:
        pid = int((staging / _PID_FILE).read_text())
    except (OSError, ValueError):
        return False  # died before recording its process id (or an older Maestro's): nobody writes there
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


# -- locking and durability ------------------------------------------------------------------------------------------
def _lock(folder: Path, wait: float) -> int:
    """An exclusive flock on the folder itself (no lock file left behind); waits up to `wait` seconds."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise MaestroError(
                    f"another Maestro run is writing to {folder}; wait until it finishes or choose another -o DIR"
                ) from None
            time.sleep(0.1)
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                return fd  # a file system without flock (some network mounts): the swap is still all or nothing
            os.close(fd)
            raise
        except BaseException:
            os.close(fd)
            raise


def _sync_tree(root: Path) -> None:
    """fsync every staged file and folder, so the renames never publish data that is still only in memory."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, text: str) -> None:
    with path.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_error(exc: OSError, target: Path) -> MaestroError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return MaestroError(f"no space left on device while writing to {target}: free some space or choose "
                            "another folder with -o DIR. The folder was left as it was.")
    where = f" ({exc.filename})" if exc.filename else ""
    return MaestroError(f"could not move the outputs into {target}{where}: {exc.strerror or exc}. "
                        "The folder was left as it was.")


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _manifest_first(name: str) -> tuple[bool, str]:
    return (name != MANIFEST, name)  # the old manifest leaves first: a folder without one is visibly mid-swap


def _manifest_last(name: str) -> tuple[bool, str]:
    return (name == MANIFEST, name)  # the new manifest arrives last: once it is there, the swap is complete


_INTERNAL = {_PID_FILE, _JOURNAL, _COMMITTED, _BACKUP}
