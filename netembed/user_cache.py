"""A per-user cache folder that no other local user can plant files in.

What netembed caches is code it will run: the compiled zoo kernel (loaded with ctypes) and
numba's compiled umap functions (whose index numba reads with pickle). A cache that another
local user can write is therefore a way into this user's account, so the cache lives in
this user's own folder and is checked before anything in it is used:

- where: $NETEMBED_CACHE_DIR, else $XDG_CACHE_HOME/netembed, else ~/.cache/netembed;
- missing folders are created with mode 0700;
- the folder (after resolving symlinks) must be owned by this user and not writable by
  group or others, and every folder above it must belong to this user or root and be
  writable by no one else unless sticky (as /tmp is): otherwise another user could swap it;
- a file is opened without following symlinks and checked on the open descriptor (a regular
  file, this user's, not group/other-writable).

Anything that fails raises CacheRefused (an OSError) with the reason; callers fall back
(the zoo to its autograd step, numba to its default cache) with one warning.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

ENV = "NETEMBED_CACHE_DIR"


class CacheRefused(OSError):
    """The cache folder or file is not safely this user's; the message says why."""


def current_uid() -> int:
    """The user whose files we trust (the effective uid: the owner of files this process creates)."""
    return os.geteuid()


def cache_root() -> Path:
    """Where netembed's caches live (not created, not checked)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"  # XDG: relative paths are invalid
    return base / "netembed"


def private_folder(name: str) -> Path:
    """cache_root()/name, created (0700) where missing and checked; its resolved path."""
    return checked_folder(cache_root() / name)


def checked_folder(path: Path) -> Path:
    """Create `path` (and missing parents) with mode 0700, check it and its ancestors; the resolved path."""
    path = Path(path).expanduser().absolute()
    for folder in reversed([path, *path.parents]):  # top down, so each new folder is 0700 whatever the umask
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as err:
            raise CacheRefused(f"cannot create the cache folder {folder}: {err.strerror or err}") from err
    real = Path(os.path.realpath(path))
    _check_folder(real, os.stat(real))
    for ancestor in real.parents:
        _check_ancestor(ancestor, os.stat(ancestor))
    return real


def _check_folder(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise CacheRefused(f"the cache folder {path} is not a folder")
    if st.st_uid != current_uid():
        raise CacheRefused(f"the cache folder {path} belongs to uid {st.st_uid}, not to this user ({current_uid()})")
    if st.st_mode & 0o022:
        raise CacheRefused(f"the cache folder {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})")


def _check_ancestor(path: Path, st: os.stat_result) -> None:
    """Another user who can rename entries of an ancestor could swap the cache folder for their own."""
    if st.st_uid not in (current_uid(), 0):
        raise CacheRefused(f"{path}, above the cache folder, belongs to uid {st.st_uid}: that user could replace it")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise CacheRefused(f"{path}, above the cache folder, is writable by other users (mode {stat.S_IMODE(st.st_mode):o})")


def open_checked(path: Path) -> int:
    """A read-only descriptor of the file at `path` (never through a symlink), checked on the descriptor.

    The caller closes it. Checking the open descriptor rather than the name means the checks all
    apply to one file, even if the name is changed meanwhile (compare it with the file used later).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if os.path.islink(path):
            raise CacheRefused(f"the cached file {path} is a symlink") from err
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CacheRefused(f"the cached file {path} is not a regular file")
        if st.st_uid != current_uid():
            raise CacheRefused(f"the cached file {path} belongs to uid {st.st_uid}, not to this user ({current_uid()})")
        if st.st_mode & 0o022:
            raise CacheRefused(f"the cached file {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})")
    except BaseException:
        os.close(fd)
        raise
    return fd
