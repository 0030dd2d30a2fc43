import numpy as np
import pytest
import torch

from netembed.config import ZooConfig
from netembed.shards import merge_zoos, plan_shards
from netembed.store import Run, load_run, save_run
from netembed.zoo import train_zoo

CONFIG = ZooConfig(models_per_function=4, width=8, steps=25, batch_size=32, seed=3)


def assert_same_zoo(a, b, exact):
    for name in ("task_ids", "replicates", "seeds", "log_steps"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for (wa, ba), (wb, bb) in zip(a.layers, b.layers):
        if exact:
            assert torch.equal(wa, wb) and torch.equal(ba, bb)
        else:
            torch.testing.assert_close(wa, wb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.fit_mse, b.fit_mse, rtol=0 if exact else 1e-3, atol=0 if exact else 1e-7)
    np.testing.assert_array_equal(a.failed, b.failed)


@pytest.mark.parametrize("by, n_shards", [("function", 2), ("seed", 3)])
def test_shards_merge_into_the_whole_zoo(tiny_family, by, n_shards):
    whole = train_zoo(tiny_family, CONFIG)
    plan = plan_shards(tiny_family.n_functions, CONFIG, n_shards, by=by)
    assert len(plan) == n_shards
    shards = [train_zoo(tiny_family, CONFIG, **shard) for shard in reversed(plan)]  # order must not matter
    merged = merge_zoos(shards, tiny_family.n_functions)
    exact = whole.engine == "kernel"  # the kernel computes each model alone: bit for bit
    assert_same_zoo(merged, whole, exact=exact)
    np.testing.assert_allclose(merged.loss_curves, whole.loss_curves, rtol=0 if exact else 1e-4)


def test_shard_run_folders_merge(tiny_family, tmp_path):
    whole = train_zoo(tiny_family, CONFIG, engine="autograd")
    folders = []
    for i, shard in enumerate(plan_shards(tiny_family.n_functions, CONFIG, 3, by="function")):
        folders.append(save_run(Run(family=tiny_family, zoo=train_zoo(tiny_family, CONFIG, engine="autograd", **shard)), tmp_path / f"s{i}"))
    merged = merge_zoos([load_run(f).zoo for f in folders], tiny_family.n_functions)
    assert_same_zoo(merged, whole, exact=False)


def test_bad_shards_are_refused(tiny_family):
    a = train_zoo(tiny_family, CONFIG, tasks=[0], replicates=[0, 1])
    b = train_zoo(tiny_family, CONFIG, tasks=[0], replicates=[1, 2])
    with pytest.raises(ValueError, match="overlap"):
        merge_zoos([a, b])
    with pytest.raises(ValueError, match="cover"):
        merge_zoos([a], tiny_family.n_functions)
    other = train_zoo(tiny_family, ZooConfig(**{**CONFIG.__dict__, "lr": 0.02}), tasks=[1], replicates=[0])
    with pytest.raises(ValueError, match="different configs"):
        merge_zoos([a, other])
    with pytest.raises(ValueError, match="replicates"):
        train_zoo(tiny_family, CONFIG, replicates=[0, 4])
    with pytest.raises(ValueError, match="n_shards"):
        plan_shards(tiny_family.n_functions, CONFIG, 5, by="function")
