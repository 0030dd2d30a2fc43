"""Run archives: a download round-trips; a hostile upload is refused by name and never unpacked or run."""

import io
import pickle
import stat
import zipfile

import numpy as np
import pytest

from netembed.archive import load_run_archive, run_archive
from netembed.store import Run, RunError, save_run

from random_zoo import random_run_parts


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    family, zoo = random_run_parts(n_functions=2, models_per_function=3, width=8)
    folder = save_run(Run(family=family, zoo=zoo, report={"tag": "up"}), tmp_path_factory.mktemp("a") / "r")
    return run_archive(folder)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rezip(files: dict, symlinks=(), compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def test_archive_round_trips(archive, tmp_path):
    run = load_run_archive(archive)
    assert run.report == {"tag": "up"}
    family, zoo = random_run_parts(n_functions=2, models_per_function=3, width=8)
    np.testing.assert_array_equal(run.zoo(np.linspace(-1, 1, 7)), zoo(np.linspace(-1, 1, 7)))
    assert sorted(members(archive)) == ["family.json", "meta.json", "report.json", "zoo.json", "zoo.safetensors"]


def test_an_archive_with_one_top_folder_loads(archive):
    assert load_run_archive(rezip({f"my-run/{k}": v for k, v in members(archive).items()})).report == {"tag": "up"}


def test_oversized_upload_is_refused_before_unzipping(archive):
    with pytest.raises(RunError, match="over the .* limit"):
        load_run_archive(archive, max_bytes=len(archive) - 1)


@pytest.mark.parametrize(
    "bad_name, match",
    [
        ("/etc/meta.json", "absolute or escaping"),
        ("../meta.json", "absolute or escaping"),
        ("r/../../zoo.json", "absolute or escaping"),
        ("C:\\zoo.json", "absolute or escaping"),
        ("evil.pkl", "unexpected member"),
        ("a/b/zoo.json", "unexpected member"),
        ("weights.pt", "unexpected member"),
    ],
)
def test_members_with_bad_names_are_refused(archive, bad_name, match):
    files = members(archive)
    files[bad_name] = b"{}"
    with pytest.raises(RunError, match=match):
        load_run_archive(rezip(files))


def test_symlink_members_are_refused(archive):
    files = members(archive)
    files["report.json"] = b"/etc/passwd"
    with pytest.raises(RunError, match="symbolic link"):
        load_run_archive(rezip(files, symlinks={"report.json"}))


def test_a_zip_bomb_is_refused_from_its_header(archive, monkeypatch):
    monkeypatch.setenv("NETEMBED_MAX_RUN_FILE_MB", "1")
    files = members(archive)
    files["report.json"] = b"{" + b" " * (3 * 2**20) + b"}"  # 3 MiB that packs to a few KB
    data = rezip(files)
    assert len(data) < 100_000
    with pytest.raises(RunError, match="zip bomb"):
        load_run_archive(data)


def test_a_member_lying_about_its_size_is_refused(archive):
    data = bytearray(rezip(members(archive), compression=zipfile.ZIP_STORED))
    # shrink the declared size of the first member in both headers: the reader must not trust it blindly
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        first = zf.infolist()[0]
    size = first.file_size.to_bytes(4, "little")
    smaller = (first.file_size // 2).to_bytes(4, "little")
    data = bytes(data).replace(size, smaller)
    with pytest.raises(RunError):
        load_run_archive(data)


def test_garbage_and_pickles_are_refused_and_never_run(archive, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Exploit())
    for data in (b"", b"not a zip", payload, archive[: len(archive) // 2]):
        with pytest.raises(RunError, match="upload"):
            load_run_archive(data)
    files = members(archive)
    files["zoo.safetensors"] = payload  # a pickle under a run file name: the checksum catches it
    with pytest.raises(RunError, match=r"zoo\.safetensors"):
        load_run_archive(rezip(files))
    assert not marker.exists()


def test_duplicates_missing_meta_and_several_runs_are_refused(archive):
    files = members(archive)
    with pytest.raises(RunError, match="meta.json is missing"):
        load_run_archive(rezip({k: v for k, v in files.items() if k != "meta.json"}))
    two = {**{f"a/{k}": v for k, v in files.items()}, **{f"b/{k}": v for k, v in files.items()}}
    with pytest.raises(RunError, match="twice|several"):
        load_run_archive(rezip(two))


def test_run_archive_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "secret.txt").write_text("x")
    with pytest.raises(RunError, match="unexpected file.*secret.txt"):
        run_archive(tmp_path / "notes")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a run folder"):
        run_archive(tmp_path / "empty")
    with pytest.raises(RunError, match="no such run"):
        run_archive(tmp_path / "missing")
