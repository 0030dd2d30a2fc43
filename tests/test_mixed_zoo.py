"""Mixed-architecture zoos: parts trained by their own engines, one combined view, one stored run; the sine activation."""

import math

import numpy as np
import pytest
import torch

from netembed.cli import main
from netembed.config import ConfigError, FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.gradients import input_gradients
from netembed.mixed_zoo import MixedZoo, embed_mixed, parse_architectures, train_mixed_zoo
from netembed.store import Run, RunError, load_run, save_run
from netembed.zoo import SIREN_OMEGA, init_layers, train_zoo

ARCHS = "16x2:relu,8x1:tanh,8x2:sine"


@pytest.fixture(scope="module")
def family():
    return make_family(FamilyConfig(n_functions=3, seed=1))


@pytest.fixture(scope="module")
def mixed(family):
    return train_mixed_zoo(family, ZooConfig(models_per_function=3, steps=200, batch_size=64, seed=1), ARCHS)


def test_each_part_is_the_zoo_of_its_architecture_trained_alone(family, mixed):
    assert list(mixed.labels) == ["16x2:relu", "8x1:tanh", "8x2:sine"]
    assert [p.engine for p in mixed.parts][1:] == ["fused", "fused"]  # no kernel for smooth activations
    alone = train_zoo(family, ZooConfig(models_per_function=3, steps=200, batch_size=64, seed=1, width=8, depth=1,
                                        activation="tanh"))  # fmt: skip
    for (wa, ba), (wb, bb) in zip(mixed.parts[1].layers, alone.layers):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
    assert mixed.n_models == 27 and list(mixed.architectures[::9]) == mixed.labels
    np.testing.assert_array_equal(mixed.task_ids, np.tile(np.repeat(np.arange(3), 3), 3))


def test_combined_gradients_match_finite_differences(mixed):
    """The combined forward (autograd through each part) against central differences of its outputs, in float64."""
    x = np.linspace(-0.9, 0.9, 7)
    grads = np.concatenate([input_gradients(p, x) for p in mixed.parts])
    doubled = MixedZoo([p.to("cpu") for p in mixed.parts])
    for p in doubled.parts:
        p.layers = [(w.double(), b.double()) for w, b in p.layers]
    h = 1e-5
    numeric = (doubled(x + h) - doubled(x - h)) / (2 * h)
    np.testing.assert_allclose(grads, numeric, rtol=1e-3, atol=1e-3)


def test_embedding_a_mixed_zoo_is_embedding_each_part(mixed):
    from netembed.cloze_training import train_embedder
    from netembed.config import ClozeConfig
    from netembed.embedding import embed

    embedder = train_embedder(mixed.parts[0], ClozeConfig(steps=5, d_model=16, n_inputs=16, models_per_batch=4))
    together = embed_mixed(embedder, mixed, seed=3)
    one_by_one = np.concatenate([embed(embedder, mixed.parts[j].select([i]), seed=3)
                                 for j in range(3) for i in range(mixed.parts[j].n_models)])  # fmt: skip
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-6)


def test_mixed_zoo_round_trips_through_the_store(tmp_path, family, mixed):
    save_run(Run(family=family, zoo=mixed), tmp_path / "m")
    back = load_run(tmp_path / "m").zoo
    assert isinstance(back, MixedZoo) and back.labels == mixed.labels
    np.testing.assert_array_equal(back.architectures, mixed.architectures)
    for pa, pb in zip(back.parts, mixed.parts):
        assert pa.config == pb.config
        for (wa, ba), (wb, bb) in zip(pa.layers, pb.layers):
            assert torch.equal(wa, wb) and torch.equal(ba, bb)
    for name in ("task_ids", "replicates", "seeds", "fit_mse", "failed", "loss_curves"):
        np.testing.assert_array_equal(getattr(back, name), getattr(mixed, name))
    np.testing.assert_array_equal(back(np.linspace(-1, 1, 9)), mixed(np.linspace(-1, 1, 9)))


def test_a_stray_tensor_in_a_mixed_zoo_is_refused(tmp_path, family, mixed):
    from safetensors.torch import load, save

    from netembed import store

    folder = save_run(Run(family=family, zoo=mixed), tmp_path / "m")
    files = store.read_run_files(folder)
    tensors = load(files["zoo.safetensors"])
    tensors["parts.7.layers.0.w"] = torch.zeros(1)
    files["zoo.safetensors"] = save(tensors)
    meta = __import__("json").loads(files["meta.json"])
    meta["files"]["zoo.safetensors"] = __import__("hashlib").sha256(files["zoo.safetensors"]).hexdigest()
    files["meta.json"] = __import__("json").dumps(meta).encode()
    with pytest.raises(RunError, match="belong to no part"):
        store.run_from_files(files)


def test_select_keeps_order_within_and_across_parts(mixed):
    chosen = mixed.select([1, 2, 10, 20])
    np.testing.assert_array_equal(chosen.seeds, mixed.seeds[[1, 2, 10, 20]])
    with pytest.raises(ValueError, match="parts in order"):
        mixed.select([20, 1])


@pytest.mark.parametrize("text, match", [("32x2:foo", "WIDTHxDEPTH"), ("32x2:relu,32x2:relu", "differ"),
                                         ("0x2:relu", "width"), ("32x2", "WIDTHxDEPTH")])  # fmt: skip
def test_bad_architecture_lists_are_refused_by_name(text, match):
    with pytest.raises(ConfigError, match=match):
        from netembed.mixed_zoo import part_configs

        part_configs(ZooConfig(), text)


def test_parse_architectures():
    assert parse_architectures("32x2:relu,16x3:sine") == [(32, 2, "relu"), (16, 3, "sine")]


def test_siren_init_folds_omega_into_the_weights():
    """First layer U(+-omega), hidden U(+-sqrt(6/fan_in)), output U(+-sqrt(6/fan_in)/omega): bounds and spread."""
    layers = init_layers(ZooConfig(width=64, depth=2, activation="sine"), np.arange(8))
    (w0, b0), (w1, _), (w2, _) = layers
    assert w0.abs().max() <= SIREN_OMEGA and w0.abs().max() > 0.9 * SIREN_OMEGA
    assert b0.abs().max() <= math.pi
    bound = math.sqrt(6 / 64)
    assert w1.abs().max() <= bound and w1.abs().max() > 0.9 * bound
    assert w2.abs().max() <= bound / SIREN_OMEGA


def test_sine_networks_fit_sines(family):
    """SIREN-style models fit DWSNets-like sines that ReLU models of the same size do not (measured: sine fit MSE
    1.6e-4 vs relu 14 at 5 functions x 4 seeds, 1000 steps; this 3 x 2 zoo at 600 steps: median 4.0e-4 to 5.3e-4
    over zoo seeds 0-3, so the bound 1e-2 leaves a 20x margin)."""
    sines = make_family(FamilyConfig(kind="sines", n_functions=3, seed=0))
    zoo = train_zoo(sines, ZooConfig(models_per_function=2, activation="sine", steps=600, seed=0))
    assert np.median(zoo.fit_mse) < 1e-2


def test_cli_trains_and_saves_a_mixed_zoo(tmp_path, capsys):
    out = tmp_path / "mz"
    assert main(["zoo", "--functions", "2", "--models-per-function", "2", "--steps", "50",
                 "--architectures", "8x1:relu,8x1:tanh", "--out", str(out)]) == 0  # fmt: skip
    assert "2 architectures" in capsys.readouterr().out
    assert load_run(out).zoo.labels == ["8x1:relu", "8x1:tanh"]
    assert main(["zoo", "--functions", "2", "--architectures", "8x1:nope", "--out", str(out)]) != 0
    assert "--architectures" in capsys.readouterr().err


def test_zoo_page_shows_each_models_architecture_and_every_page_renders(private_runs_folder, family, mixed):
    from app_session import PAGES, fresh, visit

    save_run(Run(family=family, zoo=mixed), private_runs_folder / "mixed")
    at = fresh()
    at.selectbox(key="run").set_value("saved:mixed").run()
    visit(at, "zoo")
    assert not at.error, [e.value for e in at.error]
    column = "architecture (width x depth: activation)"  # plots.ZOO_HEADERS: the model table's readable header
    table = next(d.value for d in at.dataframe if column in d.value.columns)
    assert list(table[column]) == list(mixed.architectures)
    for page in PAGES:
        visit(at, page)  # asserts no exception
        assert not at.error, (page, [e.value for e in at.error])


def test_an_embedder_is_not_trained_on_a_whole_mixed_zoo(mixed):
    from netembed.cloze_training import train_embedder
    from netembed.config import ClozeConfig

    with pytest.raises(ConfigError, match="mixes architectures"):
        train_embedder(mixed, ClozeConfig(steps=1))


def test_a_mixed_zoo_stopped_in_a_later_part_keeps_the_parts_so_far_and_none_counts_as_diverged(family):
    """A stop (the app's cancel) in part 2 of 3: parts 1 and 2 are kept, part 3 is not trained, and part 2's
    shorter loss curve (padded with NaN in the combined view) is not read as a blown-up loss."""
    from netembed.divergence import diverged

    asked = []

    def should_stop(label, step):
        asked.append((label, step))
        return label == "8x1:tanh" and step == 5

    zoo = train_mixed_zoo(family, ZooConfig(models_per_function=2, width=8, steps=50, seed=1),
                          "8x1:relu,8x1:tanh,8x2:sine", should_stop=should_stop)  # fmt: skip
    assert zoo.labels == ["8x1:relu", "8x1:tanh"] and [p.steps_done for p in zoo.parts] == [50, 5]
    assert asked[-1] == ("8x1:tanh", 5) and len(asked) == 55, "asked after every step of every part trained"
    assert np.isnan(zoo.loss_curves[-1, -1]), "the combined curves are padded"
    assert not diverged(zoo).any()
