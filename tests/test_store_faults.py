"""Faults around run folders: a save killed at any moment, damaged or hand-edited files, pickles, names.

Kills are real: a forked child process saves and the test SIGKILLs it at a chosen point (the
child pauses there and says so through a pipe), never after a sleep. Every wait on a child
has a deadline, so a child that hangs fails the test instead of hanging the suite.
"""

import hashlib
import itertools
import json
import os
import pickle
import random
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from netembed import atomic
from netembed.store import Run, RunError, list_runs, load_run, run_path, save_run

from random_zoo import random_run_parts

ROOT = Path(__file__).resolve().parents[1]  # the repository, wherever pytest was started from
CHILD_TIMEOUT_S = 60.0  # generous: the machine may be loaded; a child that needs longer has hung


@pytest.fixture(scope="module")
def parts():
    return random_run_parts(n_functions=2, models_per_function=3, width=8)


def make_run(parts, tag):
    family, zoo = parts
    return Run(family=family, zoo=zoo, report={"tag": tag})


def in_child(body) -> tuple[int, int]:
    """Fork; the child runs body(write_fd) and exits without touching pytest. Returns (pid, read_fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            body(w)
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def read_until(fd, tokens: tuple[bytes, ...], timeout=CHILD_TIMEOUT_S) -> bytes:
    """Read the child's pipe until one of `tokens` arrives; returns it. Fails (never blocks) past
    `timeout`, or at once if the child exits first (end of the pipe)."""
    buf, deadline = b"", time.monotonic() + timeout
    while True:
        for token in tokens:
            if token in buf:
                return token
        left = deadline - time.monotonic()
        assert left > 0, f"child sent none of {tokens} in {timeout:.0f} s (got {buf!r})"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 64)
            assert chunk, f"child exited before sending any of {tokens} (got {buf!r})"
            buf += chunk


def wait_for(fd, token: bytes, timeout=CHILD_TIMEOUT_S) -> None:
    read_until(fd, (token,), timeout)


def kill(pid) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def pause_at(hook_name, when):
    """Patch atomic.os.<hook_name> in the child so it reports and sleeps once `when(args)` holds."""

    def body(w):
        real = getattr(os, hook_name)

        def hooked(*args):
            out = real(*args)
            if when(args):
                os.write(w, b"HERE")
                time.sleep(60)
            return out

        setattr(os, hook_name, hooked)  # the fork's own os module: the parent is untouched
        return w

    return body


def killed_save(tmp_path, parts, hook_name, when, tag="new", previous=True, exchange=True):
    """Save run 'old' (if `previous`), then kill a child while it saves run `tag` over it, paused at the hook.

    exchange=False makes the child take the fallback swap (two renames), as on a file system
    without renameat2's RENAME_EXCHANGE.
    """
    if previous:
        save_run(make_run(parts, "old"), tmp_path / "r")
    install = pause_at(hook_name, when)

    def child(w):
        install(w)
        if not exchange:
            atomic._exchange = lambda a, b: False  # the fork's own module: the parent is untouched
        save_run(make_run(parts, tag), tmp_path / "r")

    pid, fd = in_child(child)
    wait_for(fd, b"HERE")
    kill(pid)
    os.close(fd)


def between_renames(args):
    return ".old-" in str(args[1])


@pytest.mark.parametrize("recover_by", ["list", "load", "save"])
def test_kill_between_the_two_renames_keeps_the_previous_run(tmp_path, parts, recover_by):
    killed_save(tmp_path, parts, "rename", between_renames, exchange=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "r" not in names and any(n.startswith(".r.old-") for n in names)  # killed inside the window
    if recover_by == "list":
        assert list_runs(tmp_path) == ["r"]
        assert load_run(tmp_path / "r").report == {"tag": "old"}
    elif recover_by == "load":
        assert load_run(tmp_path / "r").report == {"tag": "old"}
    else:
        save_run(make_run(parts, "newer"), tmp_path / "r")
        assert load_run(tmp_path / "r").report == {"tag": "newer"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # leftovers cleaned


def test_kill_right_after_the_exchange_keeps_the_new_run_whole(tmp_path, parts):
    """With RENAME_EXCHANGE the name is never missing: killed after the swap, the new run is in
    place and the previous one is only a hidden leftover, which the next save clears."""
    save_run(make_run(parts, "old"), tmp_path / "r")

    def child(w):
        real = atomic._exchange

        def exchanged_then_pause(a, b):
            done = real(a, b)
            os.write(w, b"HERE")
            time.sleep(60)
            return done

        atomic._exchange = exchanged_then_pause
        save_run(make_run(parts, "new"), tmp_path / "r")

    pid, fd = in_child(child)
    wait_for(fd, b"HERE")
    kill(pid)
    os.close(fd)
    assert load_run(tmp_path / "r").report == {"tag": "new"}
    assert list_runs(tmp_path) == ["r"]
    assert any(p.name.startswith(".r.tmp-") for p in tmp_path.iterdir())  # the previous version, hidden
    save_run(make_run(parts, "next"), tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_kill_while_writing_files_keeps_the_previous_run(tmp_path, parts):
    killed_save(tmp_path, parts, "fsync", lambda args: True)  # paused after the first file hit the disk
    assert any(p.name.startswith(".r.tmp-") for p in tmp_path.iterdir())
    assert list_runs(tmp_path) == ["r"]
    assert load_run(tmp_path / "r").report == {"tag": "old"}
    save_run(make_run(parts, "next"), tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_first_save_killed_leaves_no_run_that_lists_or_loads(tmp_path, parts):
    killed_save(tmp_path, parts, "fsync", lambda args: True, tag="first", previous=False)
    assert list_runs(tmp_path) == []
    with pytest.raises(RunError, match="no such run"):
        load_run(tmp_path / "r")


SAVE_STEPS = ("mkdir", "open", "fsync", "rename", "replace")  # the os calls a save makes: its possible kill points
MAX_STEPS = 200  # a save makes a few dozen such calls; more means the counting is broken


def save_pausing_after_step(n, save):
    """Child body: patch the save's os calls so that, after the n-th one, it says HERE and sleeps
    (to be killed there), then run save(); DONE if the save ended with fewer than n calls."""

    def body(w):
        count = [0]
        for name in SAVE_STEPS:
            real = getattr(os, name)

            def counted(*args, _real=real, **kwargs):
                out = _real(*args, **kwargs)
                count[0] += 1
                if count[0] == n:
                    os.write(w, b"HERE")
                    time.sleep(CHILD_TIMEOUT_S)
                return out

            setattr(os, name, counted)  # the fork's own os module: the parent is untouched
        save()
        os.write(w, b"DONE")

    return body


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_a_kill_after_any_step_of_a_save_leaves_one_whole_run(tmp_path, parts, exchange):
    """Kill a save after its 1st, 2nd, ... os call (file and folder creation, fsync, rename) until
    one gets through: every kill leaves exactly one whole run, the old one up to the save's commit
    point and the new one from there on, never back and forth. Deterministic: no sleeps, no races."""
    family, zoo = parts
    new_run = Run(family=family, zoo=zoo, report={"tag": "new", "pad": list(range(2000))})

    def save():
        if not exchange:
            atomic._exchange = lambda a, b: False  # in the fork's own module: the parent is untouched
        save_run(new_run, tmp_path / "r")

    seen = []
    for n in range(1, MAX_STEPS + 1):
        save_run(make_run(parts, "old"), tmp_path / "r")  # also clears the previous kill's leftovers
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
        pid, fd = in_child(save_pausing_after_step(n, save))
        reached = read_until(fd, (b"HERE", b"DONE"))
        kill(pid)
        os.close(fd)
        assert list_runs(tmp_path) == ["r"], f"killed after step {n}"
        run = load_run(tmp_path / "r")  # whole, checksums and all
        seen.append(run.report["tag"])
        if reached == b"DONE":
            break
    else:
        pytest.fail(f"a save made over {MAX_STEPS} os calls; the kill points are not being counted")
    assert seen[-1] == "new", "the save that got through must have left the new run"
    flips = sum(a != b for a, b in itertools.pairwise(seen))
    assert flips == 1 and seen[0] == "old", f"old until the commit point, then new, once: {seen}"
    assert seen.count("old") >= 3, f"kills should land before the commit point too: {seen}"


def test_legacy_leftover_layout_is_restored(tmp_path, parts):
    """The first version of save_run moved the previous run to `.NAME.old-*/run`."""
    folder = save_run(make_run(parts, "old"), tmp_path / "r")
    (tmp_path / ".r.old-abc").mkdir()
    os.rename(folder, tmp_path / ".r.old-abc" / "run")
    (tmp_path / ".r.tmp-xyz").mkdir()  # a half-written new run beside it
    (tmp_path / ".r.tmp-xyz" / "meta.json").write_text("{")
    assert load_run(tmp_path / "r").report == {"tag": "old"}
    save_run(make_run(parts, "new"), tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_leftover_without_a_whole_run_is_not_restored(tmp_path):
    (tmp_path / ".r.old-abc").mkdir()
    (tmp_path / ".r.old-abc" / "zoo.json").write_text("{}")  # no meta.json: not a run
    assert list_runs(tmp_path) == []
    with pytest.raises(RunError, match="no such run"):
        load_run(tmp_path / "r")


# ---------------------------------------------------------------- damaged and hand-edited files


RUN_FILES = ["meta.json", "family.json", "zoo.json", "zoo.safetensors", "report.json"]


@pytest.fixture
def saved(tmp_path, parts):
    return save_run(make_run(parts, "x"), tmp_path / "r")


@pytest.mark.parametrize("name", RUN_FILES)
@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_files_are_named(saved, name, damage):
    path = saved / name
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x55
    else:
        data = b""
    path.write_bytes(bytes(data))
    with pytest.raises(RunError, match=name.replace(".", r"\.")):
        load_run(saved)


def resign(folder, name, data: bytes) -> None:
    """Hand-edit `name` and update meta.json's checksum too, as a determined editor would."""
    (folder / name).write_bytes(data)
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"][name] = hashlib.sha256(data).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


def edit_json(folder, name, fn):
    obj = json.loads((folder / name).read_text())
    fn(obj)
    resign(folder, name, json.dumps(obj).encode())


def edit_tensors(folder, fn):
    tensors = st_load((folder / "zoo.safetensors").read_bytes())
    fn(tensors)
    resign(folder, "zoo.safetensors", st_save(tensors))


HAND_EDITS = {
    "zoo.json": [
        lambda o: o.update(seconds="fast"),
        lambda o: o.update(steps_done=-3),
        lambda o: o["config"].update(width=9),  # shapes no longer match
        lambda o: o["config"].update(lr=float("nan")),
        lambda o: o["config"].update(widht=8),  # a typo'd setting
        lambda o: o.pop("config"),
    ],
    "family.json": [
        lambda o: o.update(coefficients="many"),
        lambda o: o["coefficients"][0].__setitem__(0, 1e400),  # json writes Infinity
        lambda o: o.update(degrees=[99] * len(o["degrees"])),
        lambda o: o["config"].update(degree_max=12),
        lambda o: o.pop("degrees"),
    ],
    "zoo.safetensors": [
        lambda t: t.update({"layers.0.w": t["layers.0.w"].half()}),
        lambda t: t.update({"task_ids": t["task_ids"] + 100}),
        lambda t: t.update({"task_ids": -t["task_ids"] - 1}),
        lambda t: t.update({"replicates": t["replicates"] * 1000}),
        lambda t: t.update({"failed": t["failed"] + 7}),
        lambda t: t.update({"fit_mse": t["fit_mse"][:2]}),
        lambda t: t.update({"extra": torch.zeros(3)}),
        lambda t: t.pop("seeds"),
        lambda t: t.update({"loss_curves": torch.zeros(2, 2, 2)}),
    ],
}
CASES = [(name, i) for name, edits in HAND_EDITS.items() for i in range(len(edits))]


@pytest.mark.parametrize("name, i", CASES)
def test_hand_edited_files_are_refused_and_named(saved, name, i):
    edit = HAND_EDITS[name][i]
    if name.endswith(".json"):
        edit_json(saved, name, edit)
    else:
        edit_tensors(saved, edit)
    with pytest.raises(RunError, match=name.replace(".", r"\.")):
        load_run(saved)


@pytest.mark.parametrize(
    "meta_edit",
    [
        lambda m: m.update(format_version=99),
        lambda m: m.update(files="all"),
        lambda m: m["files"].pop("zoo.json"),
        lambda m: m["files"].pop("report.json"),  # a file present but not listed
        lambda m: m["files"].update({"embedder.json": "0" * 64}),  # listed but missing
    ],
)
def test_hand_edited_meta_is_refused(saved, meta_edit):
    meta = json.loads((saved / "meta.json").read_text())
    meta_edit(meta)
    (saved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match=r"meta\.json|embedder"):
        load_run(saved)


def test_deeply_nested_or_non_standard_json_is_refused(saved):
    resign(saved, "report.json", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(RunError, match=r"report\.json"):
        load_run(saved)
    resign(saved, "report.json", b'{"accuracy": NaN}')
    with pytest.raises(RunError, match=r"report\.json"):
        load_run(saved)


def test_random_byte_edits_only_ever_raise_run_error(saved):
    """Seeded fuzzing of a resigned zoo.json and family.json: load succeeds or names the file."""
    rng = random.Random(1)
    originals = {n: (saved / n).read_bytes() for n in ("zoo.json", "family.json", "meta.json")}
    for trial in range(60):
        name = rng.choice(["zoo.json", "family.json"])
        data = bytearray(originals[name])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(b'0123456789-.,:[]{}"eE ntf')
        for n, d in originals.items():
            (saved / n).write_bytes(d)
        resign(saved, name, bytes(data))
        try:
            load_run(saved)  # some edits are harmless (a digit of a float): then it must load
        except RunError as e:
            assert name in str(e), f"trial {trial}: {e}"


def test_oversized_files_are_refused_before_reading(saved, monkeypatch):
    monkeypatch.setenv("NETEMBED_MAX_RUN_FILE_MB", "0.001")  # about 1 KB
    with pytest.raises(RunError, match="over the .* limit"):
        load_run(saved)


def test_nan_metrics_in_a_report_are_saved_as_null(tmp_path, parts):
    family, zoo = parts
    save_run(Run(family=family, zoo=zoo, report={"acc": float("nan"), "vals": np.array([1.0, np.inf])}), tmp_path / "r")
    assert load_run(tmp_path / "r").report == {"acc": None, "vals": [1.0, None]}


# ---------------------------------------------------------------- pickles are never executed


class Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["meta.json", "zoo.json", "zoo.safetensors", "report.json"])
def test_a_pickle_under_any_run_file_name_is_refused_and_not_run(saved, tmp_path, name):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Exploit(marker))
    assert not marker.exists()
    if name == "meta.json":
        (saved / name).write_bytes(payload)
    else:
        resign(saved, name, payload)  # even with a matching checksum
    with pytest.raises(RunError, match=name.replace(".", r"\.")):
        load_run(saved)
    assert not marker.exists()
    pickle.loads(payload)  # the control: the payload is live, and would have made the marker
    assert marker.exists()


def test_a_torch_checkpoint_as_zoo_file_is_refused(saved, tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"w": torch.zeros(2)}, path)  # only saving: the zip-of-pickles format torch.load would run
    resign(saved, "zoo.safetensors", path.read_bytes())
    with pytest.raises(RunError, match=r"zoo\.safetensors"):
        load_run(saved)


# ---------------------------------------------------------------- names and paths


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_run_name_stays_inside_the_runs_folder(tmp_path_factory, name):
    root = tmp_path_factory.getbasetemp() / "names"
    root.mkdir(exist_ok=True)
    try:
        path = run_path(root, name)
    except RunError:
        return
    assert path.parent == root.resolve() and path.name == name


def test_symlinked_files_and_runs_are_refused(saved, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"not": "yours"}')
    (saved / "report.json").unlink()
    (saved / "report.json").symlink_to(secret)
    with pytest.raises(RunError, match=r"report\.json"):
        load_run(saved)
    (tmp_path / "link").symlink_to(saved)
    assert "link" not in list_runs(tmp_path)
    with pytest.raises(RunError, match="not a run folder"):
        load_run(tmp_path / "link")


@pytest.mark.parametrize("kind", ["file", "folder", "symlink", "dot"])
def test_save_never_replaces_something_that_is_not_a_run(tmp_path, parts, kind):
    target = tmp_path / "precious"
    if kind == "file":
        target.write_text("thesis draft")
    elif kind == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("keep me")
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target = tmp_path / "."
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(RunError, match="not a run folder|not a usable"):
        save_run(make_run(parts, "x"), target)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_a_save_that_cannot_be_written_changes_nothing(tmp_path, parts):
    save_run(make_run(parts, "old"), tmp_path / "r")
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    family, zoo = parts
    with pytest.raises(TypeError):
        save_run(Run(family=family, zoo=zoo, report={"obj": object()}), tmp_path / "r")
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_full_disk_gives_a_run_error_and_keeps_the_previous_run(tmp_path, parts, monkeypatch):
    save_run(make_run(parts, "old"), tmp_path / "r")
    real_open = open

    def full_disk_open(path, mode="r", *args, **kwargs):
        if ".tmp-" in str(path) and "x" in mode:
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(RunError, match="No space left"):
        save_run(make_run(parts, "new"), tmp_path / "r")
    monkeypatch.undo()
    assert load_run(tmp_path / "r").report == {"tag": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_concurrent_saves_of_one_name_leave_one_whole_run(tmp_path, parts):
    """Two processes overwrite the same run at once: the lock serialises them."""
    save_run(make_run(parts, "start"), tmp_path / "r")

    def child(tag):
        def body(w):
            os.write(w, b"GO")
            for k in range(15):
                save_run(make_run(parts, f"{tag}{k}"), tmp_path / "r")
            os.write(w, b"DONE")

        return body

    kids = [in_child(child(t)) for t in "ab"]
    for pid, fd in kids:
        wait_for(fd, b"DONE", timeout=60)
        os.waitpid(pid, 0)
        os.close(fd)
    assert load_run(tmp_path / "r").report["tag"] in ("a14", "b14")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_shutil_copy_of_a_run_loads(tmp_path, saved):
    """A run folder is self-contained: copied elsewhere it loads the same."""
    shutil.copytree(saved, tmp_path / "copy")
    assert load_run(tmp_path / "copy").report == {"tag": "x"}


def test_a_run_is_never_silently_overwritten_when_asked_not_to(tmp_path, parts):
    save_run(make_run(parts, "alice"), tmp_path / "shared-name", overwrite=False)
    with pytest.raises(RunError, match="exists already"):
        save_run(make_run(parts, "bob"), tmp_path / "shared-name", overwrite=False)
    assert load_run(tmp_path / "shared-name").report == {"tag": "alice"}


def test_two_users_saving_one_new_name_at_once_cannot_both_win(tmp_path, parts):
    """Two processes race to create the same run with overwrite=False: exactly one succeeds."""
    start_r, start_w = os.pipe()  # both children wait here, so their saves start together

    def child(tag):
        def body(w):
            os.read(start_r, 1)
            try:
                save_run(make_run(parts, tag), tmp_path / "race", overwrite=False)
                os.write(w, b"WON.")
            except RunError:
                os.write(w, b"LOST")

        return body

    kids = [in_child(child(t)) for t in ("a", "b")]
    os.write(start_w, b"xx")
    os.close(start_w)
    os.close(start_r)
    results = []
    for pid, fd in kids:
        os.waitpid(pid, 0)
        buf = b""
        while chunk := os.read(fd, 64):  # the child has exited: read to the end of the pipe
            buf += chunk
        os.close(fd)
        results.append(buf)
    assert sorted(results) == [b"LOST", b"WON."]
    assert load_run(tmp_path / "race").report["tag"] in ("a", "b")


def test_loads_during_a_stream_of_saves_always_see_one_whole_run(tmp_path, parts):
    """A reader never mixes files of two versions: the shared lock keeps the folder still while it reads."""
    family, zoo = parts
    save_run(make_run(parts, "v0"), tmp_path / "r")

    def child(w):
        os.write(w, b"GO")
        for k in range(10**6):
            save_run(Run(family=family, zoo=zoo, report={"tag": f"v{k}", "pad": [k] * 5000}), tmp_path / "r")

    pid, fd = in_child(child)
    wait_for(fd, b"GO")
    # Load until the saves have swapped in several versions under the reader, and at least 300 times.
    # No clock decides the outcome: the deadline only turns a hung saver into a failure.
    tags, listed, loads, deadline = set(), set(), 0, time.monotonic() + CHILD_TIMEOUT_S
    try:
        while len(tags) < 5 or loads < 300:
            assert time.monotonic() < deadline, f"{loads} loads saw only {sorted(tags)} in {CHILD_TIMEOUT_S:.0f} s"
            tags.add(load_run(tmp_path / "r").report["tag"])  # raises if it ever mixes two versions
            listed.add(tuple(list_runs(tmp_path)))
            loads += 1
    finally:
        kill(pid)
        os.close(fd)
    assert listed == {("r",)}


def test_a_separate_python_process_killed_mid_save_leaves_the_previous_run(tmp_path, parts):
    """The same kill as above, through `python -c` (no fork): what a user's Ctrl-\\ or an OOM kill does."""
    save_run(make_run(parts, "old"), tmp_path / "r")
    script = textwrap.dedent(f"""
        import os, time
        from random_zoo import random_run_parts
        from netembed import atomic
        from netembed.store import Run, save_run
        family, zoo = random_run_parts(n_functions=2, models_per_function=3, width=8)
        atomic._exchange = lambda a, b: False  # the fallback swap: two renames, with a window between
        real = os.rename
        def paused(src, dst):
            real(src, dst)
            if ".old-" in str(dst):
                print("HERE", flush=True)
                time.sleep(60)
        os.rename = paused
        save_run(Run(family=family, zoo=zoo, report={{"tag": "new"}}), {str(tmp_path / "r")!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])})  # fmt: skip
    try:
        wait_for(child.stdout.fileno(), b"HERE")  # bounded: a child that hangs fails, it cannot block
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not (tmp_path / "r").exists()  # killed between the renames
    assert list_runs(tmp_path) == ["r"] and load_run(tmp_path / "r").report == {"tag": "old"}
