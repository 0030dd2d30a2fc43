"""Caches no other user can plant: the zoo kernel's and numba's (netembed/user_cache.py, zoo_kernel.py).

The planted library here has a constructor that writes a marker file when it is loaded; a
control loads it in a fresh process to show the marker does appear when the library runs,
so "no marker" in the other tests means it was never loaded, not that the test is blind.
Only the good-path test compiles the real kernel (a few seconds); the others refuse before.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from netembed import projection, user_cache, zoo_kernel
from netembed.config import ZooConfig
from netembed.zoo import train_zoo

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="needs gcc: to build the kernel or the planted library")
IS_ROOT = os.geteuid() == 0
TINY = ZooConfig(models_per_function=2, width=3, steps=3, batch_size=8)

PLANTED_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    const char *path = getenv("PLANTED_MARKER");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) { fputs("the planted library ran", f); fclose(f); }
}
int zoo_step(void) { return 0; }
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache root for this test; the kernel found by `gcc`; no library loaded yet in this process."""
    root = tmp_path / "cache"
    monkeypatch.setenv("NETEMBED_CACHE_DIR", str(root))
    monkeypatch.setenv("PLANTED_MARKER", str(tmp_path / "marker"))
    monkeypatch.setenv("CC", GCC or "gcc")
    for name in ("NETEMBED_NO_KERNEL", "NETEMBED_KERNEL_CFLAGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(zoo_kernel, "_libraries", {})
    return root


@pytest.fixture(scope="module")
def planted_library(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("planted")
    (folder / "planted.c").write_text(PLANTED_C)
    subprocess.run([GCC, "-shared", "-fPIC", str(folder / "planted.c"), "-o", str(folder / "planted.so")], check=True)
    return folder / "planted.so"


def kernel_target(width=TINY.width, activation=TINY.activation) -> Path:
    """Where the kernel library for this machine would be: the name an attacker would plant."""
    return user_cache.private_folder("kernels") / zoo_kernel.build_plan(width, activation).file_name


def train_expecting_one_warning(family, pattern: str):
    """Train TINY; exactly one RuntimeWarning matching `pattern`, the fused torch engine, finite fits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zoo = train_zoo(family, TINY)
    runtime = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, runtime
    assert re.search(pattern, runtime[0]), runtime[0]
    assert zoo.engine == "fused"
    assert np.isfinite(zoo.fit_mse).all()
    return zoo


@needs_gcc
def test_the_planted_library_runs_when_loaded(planted_library, tmp_path):
    """The control: loaded in a fresh process, the planted library writes its marker."""
    marker = tmp_path / "control-marker"
    code = f"import ctypes; ctypes.CDLL({str(planted_library)!r})"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PLANTED_MARKER": str(marker)}, check=True)
    assert marker.read_text() == "the planted library ran"


@needs_gcc
def test_the_kernel_is_built_once_into_a_private_folder_and_reused(tiny_family, cache):
    assert train_zoo(tiny_family, TINY).engine == "kernel"
    kernels = cache / "kernels"
    for folder in (cache, kernels):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    target = kernel_target()
    assert sorted(p.name for p in kernels.iterdir()) == [target.name]  # no temporary file left behind
    built = target.stat().st_mtime_ns
    zoo_kernel._libraries.clear()  # as a new process would
    assert train_zoo(tiny_family, TINY).engine == "kernel"
    assert target.stat().st_mtime_ns == built


def _owned_by_someone_else(path: Path, monkeypatch):
    """As root, really give `path` to uid 65534; otherwise make fstat report it so for the checked descriptor."""
    if IS_ROOT:
        os.chown(path, 65534, 65534, follow_symlinks=False)
        return
    real_fstat = os.fstat

    def fstat(fd):
        st = real_fstat(fd)
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve()):
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, 65534, *st[5:]))
        return st

    monkeypatch.setattr(user_cache.os, "fstat", fstat)


@needs_gcc
@pytest.mark.parametrize("how", ["writable by others", "a symlink", "another owner", "not a library"])
def test_a_planted_library_is_never_loaded(tiny_family, cache, planted_library, monkeypatch, how):
    target = kernel_target()
    if how == "a symlink":
        target.symlink_to(planted_library)
    elif how == "not a library":  # right name, owner and mode, wrong content: the loader refuses it
        target.write_bytes(b"not an ELF file")
        target.chmod(0o700)
    else:
        shutil.copy(planted_library, target)
        target.chmod(0o777 if how == "writable by others" else 0o755)
        if how == "another owner":
            _owned_by_someone_else(target, monkeypatch)
    pattern = {"writable by others": "cached file .* is writable by other users", "a symlink": "is a symlink",
               "another owner": "cached file .* belongs to uid 65534", "not a library": "could not be built or loaded"}  # fmt: skip
    train_expecting_one_warning(tiny_family, pattern[how])
    assert not Path(os.environ["PLANTED_MARKER"]).exists()
    with pytest.raises(zoo_kernel.KernelUnavailable, match=pattern[how]):  # engine="kernel" says why, too
        train_zoo(tiny_family, TINY, engine="kernel")


@needs_gcc
def test_a_cache_folder_writable_by_others_is_refused(tiny_family, cache, planted_library):
    target = kernel_target()
    shutil.copy(planted_library, target)  # another user could have put it there
    target.parent.chmod(0o777)
    train_expecting_one_warning(tiny_family, "cache folder .* is writable by other users")
    assert not Path(os.environ["PLANTED_MARKER"]).exists()


@needs_gcc
def test_a_cache_folder_owned_by_someone_else_is_refused(tiny_family, cache, planted_library, monkeypatch):
    target = kernel_target()
    shutil.copy(planted_library, target)
    if IS_ROOT:  # really hand the folder (and the library in it) to another user
        for path in (target, target.parent):
            os.chown(path, 65534, 65534)
    else:  # from this process's point of view, everything here now belongs to someone else
        real_uid = os.geteuid()
        monkeypatch.setattr(user_cache, "current_uid", lambda: real_uid + 1)
    train_expecting_one_warning(tiny_family, "belongs to uid")
    assert not Path(os.environ["PLANTED_MARKER"]).exists()


def test_folders_above_the_cache_must_not_let_others_swap_it(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could rename cache/ away and put their own in its place
    with pytest.raises(user_cache.CacheRefused, match="above the cache folder, is writable by other users"):
        user_cache.checked_folder(shared / "cache")
    shared.chmod(0o1777)  # sticky, as /tmp: only the owner may rename what is in it
    assert user_cache.checked_folder(shared / "cache") == (shared / "cache").resolve()


def test_a_symlinked_cache_folder_is_checked_where_it_points(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o777)
    (tmp_path / "link").symlink_to(elsewhere)
    with pytest.raises(user_cache.CacheRefused, match="writable by other users"):
        user_cache.checked_folder(tmp_path / "link")


def test_new_cache_folders_are_0700_whatever_the_umask(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NETEMBED_CACHE_DIR", raising=False)
    old = os.umask(0)
    try:
        folder = user_cache.private_folder("kernels")
    finally:
        os.umask(old)
    assert folder == tmp_path / "xdg" / "netembed" / "kernels"
    for path in (tmp_path / "xdg", tmp_path / "xdg" / "netembed", folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


@pytest.mark.parametrize("how", ["CC names no program", "no gcc on the PATH"])
def test_without_a_compiler_training_falls_back_with_one_warning(tiny_family, cache, monkeypatch, tmp_path, how):
    if how == "CC names no program":
        monkeypatch.setenv("CC", "/nonexistent/gcc")
    else:
        monkeypatch.delenv("CC")
        monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    train_expecting_one_warning(tiny_family, r"no C compiler \(.*gcc\) found")


def fake_compiler(tmp_path, version="fake-cc 1.0", build="exit 1") -> str:
    """A shell script that answers --version with `version` and runs `build` for a compile."""
    path = tmp_path / f"cc-{abs(hash((version, build)))}"
    path.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "{version}"; exit 0; fi\n{build}\n')
    path.chmod(0o755)
    return str(path)


def test_a_build_that_hangs_is_killed_and_falls_back(tiny_family, cache, monkeypatch, tmp_path):
    # `sleep` runs as a child that holds the output pipes: only killing the process group ends the wait
    monkeypatch.setenv("CC", fake_compiler(tmp_path, build="sleep 120"))
    monkeypatch.setattr(zoo_kernel, "BUILD_TIMEOUT_S", 1)
    train_expecting_one_warning(tiny_family, "timed out")
    assert list((cache / "kernels").iterdir()) == []  # the partial library was removed


X86 = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw
processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw
"""

ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU revision\t: 1
CPU part\t: 0xd0c
"""


def test_the_cpu_key_follows_the_features_on_x86_and_aarch64():
    x86 = zoo_kernel.cpu_key(X86, "x86_64")
    assert "avx512f" in x86
    assert zoo_kernel.cpu_key(X86.replace(" avx512f", ""), "x86_64") != x86  # the same model, AVX-512 off
    assert zoo_kernel.cpu_key(X86.replace("model\t\t: 143", "model\t\t: 106"), "x86_64") != x86
    arm = zoo_kernel.cpu_key(ARM, "aarch64")
    assert arm is not None and "asimddp" in arm
    assert zoo_kernel.cpu_key(ARM.replace(" asimddp", ""), "aarch64") != arm
    assert zoo_kernel.cpu_key(ARM.replace("0xd0c", "0xd40"), "aarch64") != arm  # Neoverse N1 -> V1
    assert zoo_kernel.cpu_key(ARM.replace("0xd0c", "0xd40") + ARM, "aarch64") != arm  # big.LITTLE: both parts
    assert zoo_kernel.cpu_key(ARM, "arm64") is not None  # macOS's name for it
    # no feature line, or a machine whose fields we do not know: unknown, so no -march=native
    assert zoo_kernel.cpu_key(re.sub(r"Features.*\n", "", ARM), "aarch64") is None
    assert zoo_kernel.cpu_key(re.sub(r"flags.*\n", "", X86), "x86_64") is None
    assert zoo_kernel.cpu_key(X86, "riscv64") is None
    assert zoo_kernel.cpu_key("", "x86_64") is None


def test_the_cache_name_changes_with_compiler_flags_and_cpu(cache, monkeypatch, tmp_path):
    monkeypatch.setattr(zoo_kernel, "read_cpu_key", lambda: zoo_kernel.cpu_key(X86, "x86_64"))
    monkeypatch.setenv("CC", fake_compiler(tmp_path, "gcc 12.2.0"))
    base = zoo_kernel.build_plan(3, "relu")
    assert "-march=native" in base.command
    assert zoo_kernel.build_plan(3, "relu") == base  # deterministic
    monkeypatch.setenv("CC", fake_compiler(tmp_path, "gcc 13.1.0"))
    newer = zoo_kernel.build_plan(3, "relu")
    monkeypatch.setenv("CC", fake_compiler(tmp_path, "gcc 12.2.0"))
    monkeypatch.setenv("NETEMBED_KERNEL_CFLAGS", "-mno-avx512f")
    no_avx512 = zoo_kernel.build_plan(3, "relu")
    assert no_avx512.command[-2:] == ("-mno-avx512f", "-DW=3")
    monkeypatch.delenv("NETEMBED_KERNEL_CFLAGS")
    monkeypatch.setattr(zoo_kernel, "read_cpu_key", lambda: zoo_kernel.cpu_key(X86.replace(" avx512f", ""), "x86_64"))
    other_cpu = zoo_kernel.build_plan(3, "relu")
    monkeypatch.setattr(zoo_kernel, "read_cpu_key", lambda: None)
    unknown_cpu = zoo_kernel.build_plan(3, "relu")
    assert "-march=native" not in unknown_cpu.command
    names = [p.file_name for p in (base, newer, no_avx512, other_cpu, unknown_cpu, zoo_kernel.build_plan(4, "relu"))]
    assert len(set(names)) == len(names)


def test_numba_cache_goes_to_the_private_folder(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # recorded, so the value set below is undone after the test
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        projection.use_private_numba_cache()
    assert os.environ["NUMBA_CACHE_DIR"] == str(cache.resolve() / "numba")
    assert stat.S_IMODE((cache / "numba").stat().st_mode) == 0o700
    mine = tmp_path / "my-numba"  # a user's own choice that passes the checks is kept, silently
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(mine))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        projection.use_private_numba_cache()
    assert os.environ["NUMBA_CACHE_DIR"] == str(mine) and mine.is_dir()


def test_an_unsafe_numba_cache_is_replaced_with_one_warning(cache, monkeypatch, tmp_path):
    shared = tmp_path / "shared-numba"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(shared))
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR is not safe") as caught:
        projection.use_private_numba_cache()
    assert len(caught) == 1
    assert os.environ["NUMBA_CACHE_DIR"] == str(cache.resolve() / "numba")
