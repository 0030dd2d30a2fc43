import json
import pickle

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
    from netembed.run_schema import zoo_from_tensors, zoo_tensors

    tensors, meta = zoo_tensors(tiny_zoo)
    tensors["failed"] = torch.as_tensor(np.arange(tiny_zoo.n_models) % 3 == 0).to(torch.uint8)  # flags as saved
    old = {k: v for k, v in meta["config"].items() if k != "fail_relative_mse"}
    zoo = zoo_from_tensors(tensors, {**meta, "config": {**old, "fail_mse": 1e-2}})
    assert zoo.config == tiny_zoo.config and zoo.config.fail_relative_mse == ZooConfig().fail_relative_mse
    np.testing.assert_array_equal(zoo.failed, np.arange(tiny_zoo.n_models) % 3 == 0)
    with pytest.raises(ConfigError, match="no setting"):  # anything else unknown is still refused
        zoo_from_tensors(tensors, {**meta, "config": {**meta["config"], "fail_msee": 1e-2}})
