"""Replace a folder as one step, so a save killed at any moment leaves the previous folder whole.

A save writes every file into a hidden temporary folder `.NAME.tmp-*` beside the target,
then swaps it with the previous folder in one `renameat2(RENAME_EXCHANGE)` (Linux): the
name never goes missing, so a directory listing running at the same time always sees it
(a listing racing two plain renames was seen to miss both names). The temporary name then
holds the previous version, which is deleted; a kill before that leaves only a hidden
leftover. Where the exchange is not available (another OS or file system), the previous
folder is moved aside to `.NAME.old-*` and the new one renamed into place: between those
two renames the name is briefly absent; a process killed exactly there leaves the previous
folder under `.NAME.old-*`, and `restore_previous` puts it back (the next save, load or
listing does so).

Saves are serialised by an exclusive `flock` on the parent folder itself (so no lock
files are ever created). Reads take no lock at all, so a stream of readers can never
starve a save: `read_folder` opens every file relative to the folder's directory handle,
so a swap mid-read cannot mix two versions. Saves into one runs folder thus
wait for each other, which costs little: a save writes a few MB. Every leftover is
hidden (leading dot), so a listing of visible names never shows a half-written folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import stat
import time
from pathlib import Path

LOCK_TIMEOUT_S = 120.0  # how long a save or load waits for another save of the same name


class FolderBusy(TimeoutError):
    """Another process held the folder's lock for longer than the timeout."""


class FolderError(ValueError):
    """A folder that cannot be read as one: missing, not a folder, or holding what it should not."""


class FolderMissing(FolderError):
    """No folder at that path (maybe only for the instant between a save's two renames)."""


def leftovers(folder: Path, kind: str) -> list[Path]:
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
        for old in leftovers(folder, "old"):
            inner = old / "run"  # an earlier layout kept the previous folder one level down
            candidate = inner if inner.is_dir() and not inner.is_symlink() else old
            if not old.is_symlink() and candidate.is_dir() and is_complete(candidate):
                os.rename(candidate, folder)
                _fsync_dir(folder.parent)
                break
    for stale in leftovers(folder, "old") + leftovers(folder, "tmp"):
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
        if folder.exists() and _exchange(tmp, folder):
            _fsync_dir(folder.parent)  # `tmp` now holds the previous version: the finally below deletes it
            return
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


RENAME_EXCHANGE = 2  # linux/fs.h: swap two existing names atomically
AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing folders in one step; False where the OS or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False  # not Linux / glibc < 2.28
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # the file system does not support the exchange: use the two renames
    raise OSError(err, os.strerror(err), str(b))


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


# ---------------------------------------------------------------- listing and reading one version


def list_folders(root: Path, name_pattern, is_complete) -> list[str]:
    """Names (matching `name_pattern`) of whole folders in `root`, newest first, leftovers accounted for."""
    if not root.is_dir():
        return []
    names = set()
    for entry in root.iterdir():
        hidden = entry.name.startswith(".")
        name = entry.name[1:].partition(".old-")[0] if hidden else entry.name
        if name_pattern.match(name) and (not hidden or ".old-" in entry.name):
            names.add(name)
    found = {name: t for name in names if (t := _whole_version_time(root / name, is_complete)) is not None}
    return sorted(found, key=found.get, reverse=True)


def _whole_version_time(folder: Path, is_complete) -> float | None:
    """mtime of a whole version of `folder`: itself, else a moved-aside previous one (put back if its
    save was killed). A save's renames move the version between the two, so look twice."""
    for attempt in range(2):
        try:
            if not folder.is_symlink() and is_complete(folder):
                return folder.stat().st_mtime
            if attempt == 0 and not folder.exists():
                if try_restore(folder, is_complete) and is_complete(folder):
                    return folder.stat().st_mtime  # a killed save's previous version, put back
                for old in leftovers(folder, "old"):
                    if is_complete(old):
                        return old.stat().st_mtime  # a running save is between its renames
        except OSError:
            pass  # moved or removed while we looked; look once more
    return None


def read_folder(folder: Path, allowed: set[str], max_file_bytes: int) -> dict[str, bytes]:
    """{name: bytes} of every file in `folder`, all from one version of it, without a lock.

    Files are opened through the folder's directory handle, and the folder must still be at
    its path after the last read: a save that swapped a new version in mid-read (and began
    deleting the old one) means "read the new version instead".
    Names outside `allowed`, symlinks, sub-folders and files over `max_file_bytes` are refused.
    """
    for _ in range(5):
        try:
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise FolderMissing(f"{folder}: no such run folder") from None
        except OSError:  # a file, or a symlink (ELOOP): never followed out of the runs folder
            raise FolderError(f"{folder}: not a run folder") from None
        try:
            files = _read_through(folder, dfd, allowed, max_file_bytes)
            if _same_folder(folder, dfd):
                # still in place after the last read, so no save had moved it aside (and begun deleting it)
                return files
        except FileNotFoundError:
            if _same_folder(folder, dfd):
                raise FolderError(f"{folder}: a file vanished while being read") from None
        finally:
            os.close(dfd)
    raise FolderError(f"{folder}: kept being replaced while being read; try again")


def _same_folder(folder: Path, dfd: int) -> bool:
    try:
        now, held = os.stat(folder, follow_symlinks=False), os.fstat(dfd)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _read_through(folder: Path, dfd: int, allowed: set[str], max_file_bytes: int) -> dict[str, bytes]:
    present = sorted(os.listdir(dfd))
    strangers = [n for n in present if n not in allowed]
    if strangers:
        more = f" and {len(strangers) - 5} more" if len(strangers) > 5 else ""
        raise FolderError(f"{folder}: refusing unexpected file(s) {', '.join(strangers[:5])}{more}; "
                          "a run holds only safetensors and JSON files")  # fmt: skip
    files = {}
    for name in present:
        info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            raise FolderError(f"{name}: not a regular file (a symlink or folder) in {folder}")
        if info.st_size > max_file_bytes:
            raise FolderError(f"{name}: {info.st_size / 2**20:.1f} MiB is over the {max_file_bytes / 2**20:.0f} MiB "
                              "limit for a run file")  # fmt: skip
        with os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd), "rb") as fh:
            files[name] = fh.read(max_file_bytes + 1)
    return files
