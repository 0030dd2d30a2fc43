"""A diverged model is flagged on its own and poisons nothing: not the other models, not the embedder."""

import numpy as np
import pytest
import torch

import netembed.zoo as zoo_module
from netembed import zoo_kernel
from netembed.cloze_training import train_embedder
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.divergence import DivergenceError, check_not_all_diverged, diverged, divergence_note
from netembed.embedding import embed
from netembed.family import make_family
from netembed.gradients import input_gradients, line_sections
from netembed.zoo import Zoo, fit_errors, train_zoo

from random_zoo import random_run_parts, random_zoo, with_nan_model

BAD = 3  # the model that goes NaN


def test_a_nan_model_leaves_the_others_outputs_gradients_and_sections_unchanged():
    clean = random_zoo(n_functions=2, models_per_function=4, width=8)
    poisoned = with_nan_model(clean, BAD)
    others = np.arange(clean.n_models) != BAD
    x = np.linspace(-1, 1, 101)
    y_clean, y = clean(x), poisoned(x)
    np.testing.assert_array_equal(y[others], y_clean[others])
    assert np.isnan(y[BAD]).all()
    g_clean, g = input_gradients(clean, x), input_gradients(poisoned, x)
    np.testing.assert_array_equal(g[others], g_clean[others])
    s_clean, s = line_sections(clean), line_sections(poisoned)
    np.testing.assert_allclose(s.evaluate(x)[others], s_clean.evaluate(x)[others], rtol=1e-12)
    np.testing.assert_array_equal(s.gradient(x)[others], s_clean.gradient(x)[others])


class ScaledFamily:
    """A family's members times `factor` (all fit_errors asks of a family is values)."""

    def __init__(self, family, factor: float):
        self.family, self.factor = family, factor

    def values(self, x):
        return self.factor * self.family.values(x)


def test_the_failed_flag_is_relative_to_the_targets_variance(tiny_family, tiny_zoo):
    """A model 10x the scale on a target 10x the scale misses by 100x the MSE and is judged the same; the flags
    are those of a slow reference (each model's MSE over its own target's variance on the grid)."""
    from dataclasses import replace

    mse, _ = fit_errors(tiny_zoo, tiny_family)
    target = tiny_family.values(np.linspace(-1, 1, zoo_module.FIT_GRID))  # (K, grid): the dense grid of fit_errors
    relative = np.array([mse[i] / np.var(target[k]) for i, k in enumerate(tiny_zoo.task_ids)])
    ranked = np.sort(relative)
    middle = len(ranked) // 2
    assert ranked[middle] > 1.01 * ranked[middle - 1]  # a threshold between them is far from both (no rounding tie)
    threshold = float(np.sqrt(ranked[middle - 1] * ranked[middle]))  # half the models fail: neither side is empty
    zoo = Zoo(**{**tiny_zoo.__dict__, "config": replace(tiny_zoo.config, fail_relative_mse=threshold)})
    _, failed = fit_errors(zoo, tiny_family)
    np.testing.assert_array_equal(failed, relative > threshold)
    assert 0 < failed.sum() < zoo.n_models
    w, b = zoo.layers[-1]
    scaled = Zoo(**{**zoo.__dict__, "layers": [*zoo.layers[:-1], (10 * w, 10 * b)]})
    mse_scaled, failed_scaled = fit_errors(scaled, ScaledFamily(tiny_family, 10.0))
    np.testing.assert_allclose(mse_scaled, 100 * mse, rtol=1e-4)
    np.testing.assert_array_equal(failed_scaled, failed)


def test_a_flat_target_fails_any_miss_and_not_a_perfect_fit(tiny_family):
    """The relative error of a constant target (variance 0): any miss is infinitely relative; 0 / 0 is no failure."""
    zoo = random_zoo(n_functions=1, models_per_function=2, width=4)
    layers = [(w.clone(), b.clone()) for w, b in zoo.layers]
    layers[-1][0].zero_()
    layers[-1][1][0] = 0.0  # model 0 outputs exactly 0 everywhere
    layers[-1][1][1] = 0.5  # model 1 outputs 0.5 everywhere
    flat = ScaledFamily(tiny_family, 0.0)  # every member is the zero function
    mse, failed = fit_errors(Zoo(**{**zoo.__dict__, "layers": layers}), flat)
    np.testing.assert_array_equal(mse, [0.0, 0.25])
    np.testing.assert_array_equal(failed, [False, True])


def test_fit_errors_flag_only_the_nan_model():
    family, clean = random_run_parts(n_functions=2, models_per_function=4, width=8)
    mse, failed = fit_errors(with_nan_model(clean, BAD), family)
    mse_clean, failed_clean = fit_errors(clean, family)
    assert failed[BAD] and not np.isfinite(mse[BAD])
    others = np.arange(clean.n_models) != BAD
    np.testing.assert_array_equal(mse[others], mse_clean[others])
    np.testing.assert_array_equal(failed[others], failed_clean[others])
    assert diverged(Zoo(**{**with_nan_model(clean, BAD).__dict__, "fit_mse": mse}))[BAD]


NO_KERNEL = zoo_kernel.why_unavailable(ZooConfig(width=8), "cpu")  # None where the C kernel can be built
ENGINES = [
    pytest.param("kernel", marks=pytest.mark.skipif(NO_KERNEL is not None, reason=f"C kernel unavailable: {NO_KERNEL}")),
    "autograd",  # always runs: the same isolation holds for the torch steps, so nothing is lost without a compiler
    "fused",
]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_model_that_goes_nan_in_training_does_not_poison_the_others(monkeypatch, engine):
    """Train twice from the same inits, once with one model's init set to NaN: the rest must match exactly."""
    family = make_family(FamilyConfig(n_functions=2, seed=1))
    config = ZooConfig(models_per_function=4, width=8, steps=40, batch_size=32)
    try:
        clean = train_zoo(family, config, engine=engine)
    except zoo_kernel.KernelUnavailable as e:  # a compiler that cannot build it (no OpenMP, say)
        pytest.skip(f"C kernel unavailable: {e}")
    real_init = zoo_module.init_layers

    def nan_init(*args, **kwargs):
        layers = real_init(*args, **kwargs)
        with torch.no_grad():
            layers[1][0][BAD] = float("nan")
        return layers

    monkeypatch.setattr(zoo_module, "init_layers", nan_init)
    poisoned = train_zoo(family, config, engine=engine)
    others = np.arange(clean.n_models) != BAD
    for (wc, bc), (wp, bp) in zip(clean.layers, poisoned.layers):
        torch.testing.assert_close(wp[others], wc[others], rtol=0, atol=0)
        torch.testing.assert_close(bp[others], bc[others], rtol=0, atol=0)
    np.testing.assert_array_equal(poisoned.fit_mse[others], clean.fit_mse[others])
    assert poisoned.failed[BAD] and diverged(poisoned)[BAD] and not diverged(poisoned)[others].any()
    assert "1 of 8 models diverged" in divergence_note(poisoned)


def test_a_learning_rate_that_blows_up_every_model_is_a_clear_error():
    family = make_family(FamilyConfig(n_functions=2, seed=1))
    zoo = train_zoo(family, ZooConfig(models_per_function=2, width=8, steps=60, batch_size=32, lr=10.0))
    assert zoo.failed.all() and diverged(zoo).all()
    with pytest.raises(DivergenceError, match="lr 10 made training diverge.*lower lr"):
        check_not_all_diverged(zoo)
    fine = train_zoo(family, ZooConfig(models_per_function=2, width=8, steps=60, batch_size=32, lr=0.01))
    check_not_all_diverged(fine)
    assert not diverged(fine).any() and divergence_note(fine) is None


def test_the_embedder_trains_only_on_models_that_did_not_fail():
    """One NaN model in the training split must not turn the embedder's loss or the embeddings to NaN."""
    family, clean = random_run_parts(n_functions=2, models_per_function=6, width=8)
    poisoned = with_nan_model(clean, i=0)  # replicate 0: in the training split
    poisoned.fit_mse, poisoned.failed = fit_errors(poisoned, family)
    assert poisoned.is_train[0] and poisoned.failed[0]
    config = ClozeConfig(d_model=16, n_heads=2, n_layers=1, n_inputs=16, steps=8, models_per_batch=64, seed=0)
    embedder = train_embedder(poisoned, config)
    assert np.isfinite(embedder.loss_curve_).all()
    z = embed(embedder, poisoned)
    assert np.isfinite(np.delete(z, 0, axis=0)).all()
