"""Replace a folder as one step, so a save killed at any moment leaves the previous folder whole.

A save writes every file into a hidden temporary folder `.NAME.tmp-*` beside the target,
moves the previous folder aside to `.NAME.old-*`, renames the new one into place and only
then deletes the old one. Between the two renames the target name is briefly absent; a
process killed exactly there leaves the previous folder under `.NAME.old-*`, and
`restore_previous` puts it back (the next save, load or listing does so).

Saves are serialised by an exclusive `flock` on the parent folder itself (so no lock
files are ever created, and a load writes nothing); loads take a shared lock on it, so a
reader never sees a folder swapped under it half-way. Saves into one runs folder thus
wait for each other, which costs little: a save writes a few MB. Every leftover is
hidden (leading dot), so a listing of visible names never shows a half-written folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path

LOCK_TIMEOUT_S = 120.0  # how long a save or load waits for another save of the same name


class FolderBusy(TimeoutError):
    """Another process held the folder's lock for longer than the timeout."""


def _leftovers(folder: Path, kind: str) -> list[Path]:
    """Hidden `.NAME.old-*` or `.NAME.tmp-*` siblings of `folder`, newest first."""
    prefix = f".{folder.name}.{kind}-"
    try:
        found = [p for p in folder.parent.iterdir() if p.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: p.lstat().st_mtime, reverse=True)


@contextlib.contextmanager
def folder_lock(folder: Path, exclusive: bool, timeout: float = LOCK_TIMEOUT_S, wait: bool = True):
    """Hold a flock on `folder`'s parent; yields True when locked, False when the parent does not exist.

    With `wait=False` a busy lock yields None at once instead of waiting.
    """
    try:
        fd = os.open(folder.parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield False  # nothing was ever saved there, so there is nothing to wait for
        return
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    yield None
                    return
                if time.monotonic() > deadline:
                    raise FolderBusy(f"{folder.name}: another save has held its folder for over {timeout:.0f} s") from None
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def restore_previous(folder: Path, is_complete) -> bool:
    """With the exclusive lock held: put back a folder moved aside by a killed save; drop other leftovers.

    Returns True when `folder` exists afterwards. `is_complete(path)` says whether a moved-aside
    folder is a whole one worth restoring.
    """
    if not folder.exists():
        for old in _leftovers(folder, "old"):
            inner = old / "run"  # an earlier layout kept the previous folder one level down
            candidate = inner if inner.is_dir() and not inner.is_symlink() else old
            if not old.is_symlink() and candidate.is_dir() and is_complete(candidate):
                os.rename(candidate, folder)
                _fsync_dir(folder.parent)
                break
    for stale in _leftovers(folder, "old") + _leftovers(folder, "tmp"):
        _remove(stale)  # safe: the exclusive lock means no save of this name is running
    return folder.exists()


def try_restore(folder: Path, is_complete) -> bool:
    """`restore_previous` unless a save holds the lock right now; never waits (for listings)."""
    with folder_lock(folder, exclusive=True, wait=False) as locked:
        if locked is not None:  # None: a save is running right now; leave its leftovers alone
            return restore_previous(folder, is_complete)
    return folder.exists()


def replace_folder(folder: Path, files: dict[str, bytes]) -> None:
    """With the exclusive lock held: write `files` into a new folder and swap it in for `folder`."""
    tmp = folder.parent / f".{folder.name}.tmp-{secrets.token_hex(6)}"
    os.mkdir(tmp)
    try:
        for name, data in files.items():
            with open(tmp / name, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{secrets.token_hex(6)}"
            os.rename(folder, old)  # from here until the next rename the previous folder lives at `old`
        os.rename(tmp, folder)
        _fsync_dir(folder.parent)
        if old is not None:
            _remove(old)
    finally:
        if tmp.exists():
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    """Make renames and new entries durable across a power cut, not only a killed process."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
