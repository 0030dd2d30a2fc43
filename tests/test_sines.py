"""The sine family against independent references, its zoo and store paths, and many polynomials."""

import numpy as np
import pytest
import torch

from netembed.config import ConfigError, FamilyConfig, ZooConfig
from netembed.family import FamilyError, make_family
from netembed.sines import SineFamily
from netembed.store import Run, load_run, save_run
from netembed.zoo import polynomial_targets, target_function, train_zoo


def test_sine_values_and_derivatives_match_references():
    family = make_family(FamilyConfig(kind="sines", n_functions=5, sine_phase=0.3, seed=2))
    assert isinstance(family, SineFamily)
    x = np.linspace(-1, 1, 201)
    a, b, c = family.parameters.T
    t = np.pi * x  # the DWSNets input t in [-pi, pi)
    for k in range(5):
        np.testing.assert_allclose(family.values(x)[k], a[k] * np.sin(b[k] * t + c[k]), atol=1e-12)
    h = 1e-6  # central differences with respect to the networks' input x
    fd = (family.values(x + h) - family.values(x - h)) / (2 * h)
    np.testing.assert_allclose(family.derivatives(x), fd, rtol=1e-6, atol=1e-5)
    assert family.parameter_names == ("a", "b", "c") and family.parameters.shape == (5, 3)
    np.testing.assert_array_equal(family.labels, np.arange(5))


def test_sine_draws_follow_their_ranges_and_seed():
    config = FamilyConfig(kind="sines", n_functions=200, sine_amplitude_min=1.0, sine_frequency_max=4.0, seed=3)
    family = make_family(config)
    a, b, c = family.parameters.T
    assert 1.0 <= a.min() and a.max() <= 10.0 and 0.5 <= b.min() and b.max() <= 4.0 and (c == 0).all()
    assert a.max() > 9.0 and b.max() > 3.8  # uniform draws reach the top of their ranges
    np.testing.assert_array_equal(make_family(config).parameters, family.parameters)
    d = family.derivative_distances()
    assert d[~np.eye(200, dtype=bool)].min() >= config.min_derivative_distance


def test_sine_settings_are_checked():
    with pytest.raises(ConfigError, match="kind"):
        FamilyConfig(kind="cosines")
    with pytest.raises(ConfigError, match="sine_frequency_max"):
        FamilyConfig(kind="sines", sine_frequency_min=5.0, sine_frequency_max=4.0)
    with pytest.raises(FamilyError, match="sines"):
        make_family(FamilyConfig(kind="sines", n_functions=50, min_derivative_distance=90.0, max_tries=200))


def test_polynomials_keep_their_float32_horner_targets():
    family = make_family(FamilyConfig(n_functions=4, seed=1))
    x = torch.rand(300) * 2 - 1
    coeffs = torch.as_tensor(family.coefficients, dtype=torch.float32)
    assert torch.equal(target_function(family, "cpu")(x), polynomial_targets(coeffs, x))  # the path earlier zoos took
    # and that path agrees with the family's own exact values
    np.testing.assert_allclose(target_function(family, "cpu")(x).numpy(), family.values(x.double().numpy()), atol=1e-5)


def test_a_sine_zoo_trains_and_round_trips_through_the_store(tmp_path):
    family = make_family(FamilyConfig(kind="sines", n_functions=2, sine_frequency_max=1.0, sine_amplitude_max=1.0, seed=0))
    zoo = train_zoo(family, ZooConfig(models_per_function=2, width=16, steps=300, seed=0))
    np.testing.assert_allclose(target_function(family, "cpu")(torch.linspace(-1, 1, 9)).numpy(),
                               family.values(np.linspace(-1, 1, 9)), atol=1e-6)  # fmt: skip
    var = (family.values(np.linspace(-1, 1, 1025)) ** 2).mean(1)[zoo.task_ids]
    assert (zoo.fit_mse / var).max() < 0.2  # slow, small sines are learned (measured max 0.0099 over family and zoo seeds 0-3)
    save_run(Run(family=family, zoo=zoo), tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert loaded.family.config == family.config
    np.testing.assert_array_equal(loaded.family.parameters, family.parameters)


def test_many_polynomials_are_obtainable_and_the_refusal_says_how():
    with pytest.raises(FamilyError, match="degrees 3-6 give 200"):
        make_family(FamilyConfig(n_functions=100))
    family = make_family(FamilyConfig(n_functions=200, degree_min=3, degree_max=6, max_tries=20000))
    assert family.n_functions == 200
    assert family.derivative_distances()[~np.eye(200, dtype=bool)].min() >= 1.0


def test_the_pipeline_and_the_family_figure_take_sines():
    from netembed.config import ClozeConfig
    from netembed.pipeline import run_pipeline
    from netembed.plots import family_figure

    family_config = FamilyConfig(kind="sines", n_functions=3, sine_frequency_max=2.0, seed=1)
    run = run_pipeline(family_config, ZooConfig(models_per_function=4, width=16, steps=100, seed=1),
                       ClozeConfig(steps=4, d_model=16, n_heads=2, n_inputs=16), projections=("pca",))  # fmt: skip
    assert set(run.report["probes"]["cloze"]) >= {"linear_accuracy", "coefficient_r2"}
    assert family_figure(run.family).data[0].name.startswith("f0 (a ")
