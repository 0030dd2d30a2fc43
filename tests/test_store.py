import copy
import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from netembed.store import Run, RunError, list_runs, load_run, run_path, save_run


def test_zoo_round_trips_exactly(tmp_path, tiny_family, tiny_zoo):
    save_run(Run(family=tiny_family, zoo=tiny_zoo), tmp_path / "r")
    run = load_run(tmp_path / "r")
    np.testing.assert_array_equal(run.family.coefficients, tiny_family.coefficients)
    assert run.family.config == tiny_family.config and run.zoo.config == tiny_zoo.config
    for (wa, ba), (wb, bb) in zip(run.zoo.layers, tiny_zoo.layers):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
    for name in ("task_ids", "replicates", "seeds", "loss_curves", "log_steps", "fit_mse", "failed"):
        np.testing.assert_array_equal(getattr(run.zoo, name), getattr(tiny_zoo, name))
    np.testing.assert_array_equal(run.zoo(np.linspace(-1, 1, 9)), tiny_zoo(np.linspace(-1, 1, 9)))


def test_saved_run_holds_no_pickle(tmp_path, tiny_family, tiny_zoo):
    folder = save_run(Run(family=tiny_family, zoo=tiny_zoo), tmp_path / "r")
    for f in folder.iterdir():
        data = f.read_bytes()
        assert not data.startswith(b"\x80"), f"{f.name} looks like a pickle"
        assert b"PK\x03\x04" not in data[:4], f"{f.name} looks like a torch zip"
        assert f.suffix in (".json", ".safetensors")
        if f.suffix == ".json":
            json.loads(data)


def test_overwrite_keeps_one_complete_run_and_leaves_no_temporaries(tmp_path, tiny_family, tiny_zoo):
    save_run(Run(family=tiny_family, zoo=tiny_zoo), tmp_path / "r")
    save_run(Run(family=tiny_family, zoo=tiny_zoo, report={"x": 1}), tmp_path / "r")
    assert load_run(tmp_path / "r").report == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert list_runs(tmp_path) == ["r"]


def test_corrupted_file_is_named(tmp_path, tiny_family, tiny_zoo):
    folder = save_run(Run(family=tiny_family, zoo=tiny_zoo), tmp_path / "r")
    data = (folder / "zoo.safetensors").read_bytes()
    (folder / "zoo.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="zoo.safetensors"):
        load_run(folder)


def test_a_pickle_in_the_folder_is_refused_not_run(tmp_path, tiny_family, tiny_zoo):
    folder = save_run(Run(family=tiny_family, zoo=tiny_zoo), tmp_path / "r")
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "weights.pt").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(RunError, match="weights.pt"):
        load_run(folder)
    (folder / "weights.pt").unlink()
    (folder / "zoo.safetensors").write_bytes(pickle.dumps(Exploit()))  # a pickle under an allowed name
    with pytest.raises(RunError, match="zoo.safetensors"):
        load_run(folder)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../x", "/etc", "a/b", ".hidden", "", "x" * 65, "a\x00b", "..", "ok name"])
def test_run_names_cannot_escape_the_runs_folder(tmp_path, name):
    with pytest.raises(RunError, match="not allowed|outside"):
        run_path(tmp_path, name)


def test_good_run_names_resolve_inside(tmp_path):
    assert run_path(tmp_path, "zoo-10x50_v1.2") == (tmp_path / "zoo-10x50_v1.2").resolve()


def test_a_zoo_saved_with_the_absolute_fail_mse_still_loads(tiny_zoo):
    """Runs saved before the failed flag became relative (fail_relative_mse) hold fail_mse in zoo.json (the bundled
    demo run does): it loads with the default relative threshold and its saved failed flags unchanged."""
    from netembed.config import ConfigError, ZooConfig
    from netembed.run_schema import stored_zoo, zoo_tensors

    def zoo_from_tensors(tensors, meta):  # what load_run does with zoo.safetensors read as numpy
        return stored_zoo({k: v.numpy() for k, v in tensors.items()}, meta).build()

    tensors, meta = zoo_tensors(tiny_zoo)
    tensors["failed"] = torch.as_tensor(np.arange(tiny_zoo.n_models) % 3 == 0).to(torch.uint8)  # flags as saved
    old = {k: v for k, v in meta["config"].items() if k != "fail_relative_mse"}
    zoo = zoo_from_tensors(tensors, {**meta, "config": {**old, "fail_mse": 1e-2}})
    assert zoo.config == tiny_zoo.config and zoo.config.fail_relative_mse == ZooConfig().fail_relative_mse
    np.testing.assert_array_equal(zoo.failed, np.arange(tiny_zoo.n_models) % 3 == 0)
    with pytest.raises(ConfigError, match="no setting"):  # anything else unknown is still refused
        zoo_from_tensors(tensors, {**meta, "config": {**meta["config"], "fail_msee": 1e-2}})


# ---------------------------------------------------------------- lazy loading (the app shows runs without torch)

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_run"


def test_lazy_load_builds_the_same_run_as_an_eager_one():
    eager, lazy = load_run(DEMO), load_run(DEMO, lazy=True)
    assert lazy.zoo_config == eager.zoo.config and lazy.n_models == eager.zoo.n_models == 120
    assert lazy.has_embedder and lazy.report == eager.report and lazy.family.config == eager.family.config
    for (wa, ba), (wb, bb) in zip(lazy.zoo.layers, eager.zoo.layers):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
    for name in ("task_ids", "replicates", "seeds", "loss_curves", "log_steps", "fit_mse", "failed"):
        np.testing.assert_array_equal(getattr(lazy.zoo, name), getattr(eager.zoo, name))
    a, b = lazy.embedder.state_dict(), eager.embedder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(lazy.embedder.embeddings_, eager.embedder.embeddings_)
    assert lazy.zoo is lazy.zoo and lazy.embedder is lazy.embedder  # built once, then kept


def test_lazy_load_of_a_mixed_zoo_counts_every_part(tmp_path, tiny_family, tiny_zoo):
    from netembed.mixed_zoo import MixedZoo

    mixed = MixedZoo([tiny_zoo, copy.deepcopy(tiny_zoo)])  # a copy: safetensors refuses tensors that share memory
    save_run(Run(family=tiny_family, zoo=mixed), tmp_path / "m")
    lazy = load_run(tmp_path / "m", lazy=True)
    assert lazy.n_models == 2 * tiny_zoo.n_models and lazy.zoo_config == tiny_zoo.config and not lazy.has_embedder
    assert lazy.zoo.n_models == lazy.n_models and lazy.zoo.labels == mixed.labels
    np.testing.assert_array_equal(lazy.zoo(np.linspace(-1, 1, 9)), mixed(np.linspace(-1, 1, 9)))


def _with_embedder_config(folder: Path, **changes) -> None:
    """Edit embedder.json's config by hand, and its checksum in meta.json (as a careful hand-editor would)."""
    emb = json.loads((folder / "embedder.json").read_text())
    emb["config"].update(changes)
    data = json.dumps(emb).encode()
    (folder / "embedder.json").write_bytes(data)
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["embedder.json"] = hashlib.sha256(data).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


def test_embedder_weights_that_do_not_fit_its_config_are_named_at_load_or_on_first_use(tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(DEMO, folder)
    _with_embedder_config(folder, d_model=8)  # the stored weights were trained with another width
    with pytest.raises(RunError, match="embedder.safetensors / embedder.json.*do not match"):
        load_run(folder)
    lazy = load_run(folder, lazy=True)  # the numpy checks pass: only building the module sees the shapes
    assert lazy.has_embedder and lazy.n_models == 120
    with pytest.raises(RunError, match="embedder.safetensors / embedder.json.*do not match"):
        _ = lazy.embedder


def test_a_lazy_load_imports_no_torch():
    code = ("import sys; from netembed.store import load_run; r = load_run(sys.argv[1], lazy=True); "
            "print(r.n_models, r.zoo_config.models_per_function, r.has_embedder, 'torch' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(DEMO)], cwd=DEMO.parents[1], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["120", "10", "True", "False"]
