"""Run folders as zip archives, for download and upload; an upload is checked before anything is unpacked.

An uploaded file comes from anywhere, so it is treated as hostile: its size is capped, and
every member must be a plain run file (a name from the run schema, optionally inside one
top folder) with a declared size under the limit. Absolute paths, `..`, backslashes,
symlinks, encrypted or duplicate members and zip bombs are refused by name. The members
are then unpacked in memory (never onto disk) and go through the same checks as a run
folder (`run_from_files`: checksums and the schema); nothing is unpickled, so nothing in
the archive can run.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path, PurePosixPath

from .limits import max_run_file_bytes, max_upload_bytes
from .store import ALLOWED_FILES, RUN_NAME, Run, RunError, read_run_files, run_from_files

UNPACK_FACTOR = 20  # an archive may unpack to at most this many times the upload limit (runs compress ~1-5x)


def run_archive(folder: str | Path) -> bytes:
    """A zip of the run folder's files (flat), for download: one consistent version, run files only."""
    files = read_run_files(folder)
    if "meta.json" not in files:
        raise RunError(f"{folder}: not a run folder (no meta.json)")
    return zip_files(files)


def zip_files(files: dict[str, bytes]) -> bytes:
    """A flat zip of run files {name: bytes} (e.g. store.run_files(run) of a run not yet saved)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def load_run_archive(data: bytes, max_bytes: int | None = None) -> Run:
    """Validate an uploaded run archive and load it; any problem raises RunError naming the member."""
    max_bytes = max_upload_bytes() if max_bytes is None else max_bytes
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RunError(f"upload: expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise RunError(f"upload: {len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.1f} MiB limit")
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError) as e:
        raise RunError(f"upload: not a zip archive of a run folder ({e})") from None
    members = _check_members(infos, max_bytes)
    # unpacked in memory, never on disk, then through the same checks as a run folder
    return run_from_files({name: _read_member(zf, info) for name, info in members.items()})


def _check_members(infos: list[zipfile.ZipInfo], max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """{run file name: member}, or RunError for the first member that is not a plain run file."""
    if len(infos) > 2 * len(ALLOWED_FILES) + 1:
        raise RunError(f"upload: {len(infos)} members; a run archive holds at most {len(ALLOWED_FILES)} files")
    per_file, total_cap = max_run_file_bytes(), UNPACK_FACTOR * max_bytes
    members, tops, total = {}, set(), 0
    for info in infos:
        raw = info.filename
        path = PurePosixPath(raw)
        if raw.startswith(("/", "\\")) or "\\" in raw or ":" in raw or ".." in path.parts or "\x00" in raw:
            raise RunError(f"upload: member {raw!r} has an absolute or escaping path")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise RunError(f"upload: member {raw!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise RunError(f"upload: member {raw!r} is encrypted")
        if info.is_dir():
            if len(path.parts) != 1 or not RUN_NAME.match(path.name):
                raise RunError(f"upload: unexpected folder {raw!r}")
            tops.add(path.name)
            continue
        if len(path.parts) > 2 or path.name not in ALLOWED_FILES:
            raise RunError(f"upload: unexpected member {raw!r}; a run holds only {', '.join(sorted(ALLOWED_FILES))}")
        if len(path.parts) == 2:
            if not RUN_NAME.match(path.parts[0]):
                raise RunError(f"upload: unexpected folder in {raw!r}")
            tops.add(path.parts[0])
        if path.name in members:
            raise RunError(f"upload: {path.name} appears twice")
        if info.file_size > per_file:
            raise RunError(f"upload: member {raw!r} unpacks to {info.file_size / 2**20:.1f} MiB, over the "
                           f"{per_file / 2**20:.0f} MiB limit for a run file: refused as a zip bomb")  # fmt: skip
        total += info.file_size
        if total > total_cap:
            raise RunError(f"upload: members unpack to over {total_cap / 2**20:.0f} MiB in all; refused as a zip bomb")
        members[path.name] = info
    if len(tops) > 1:
        raise RunError(f"upload: members spread over several folders ({', '.join(sorted(tops))}); expected one run")
    if "meta.json" not in members:
        raise RunError("upload: meta.json is missing; this is not a run archive")
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, never more than its declared size (zipfile stops there and checks the CRC)."""
    try:
        with zf.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError, OSError) as e:
        raise RunError(f"upload: member {info.filename!r} is damaged ({e})") from None
    if len(data) != info.file_size:
        raise RunError(f"upload: member {info.filename!r} holds a different size than it declares")
    return data
