import numpy as np
import pytest
import torch
from torch import nn

from netembed.config import ZooConfig
from netembed.zoo import input_generator, lr_at, polynomial_targets, train_zoo


def modules_from_zoo_init(config, seeds):
    """The slow, obvious reference: one nn.Sequential per model, drawing its init as nn.Linear does."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}[config.activation]
    sizes = [1] + [config.width] * config.depth + [1]
    models = []
    for seed in seeds:
        torch.manual_seed(0)  # nn.Linear's own init is replaced below from the model's seed
        g = torch.Generator().manual_seed(int(seed))
        layers = []
        for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = nn.Linear(fi, fo)
            bound = 1 / fi**0.5
            with torch.no_grad():
                lin.weight.copy_(torch.rand(fo, fi, generator=g) * 2 * bound - bound)
                lin.bias.copy_(torch.rand(fo, generator=g) * 2 * bound - bound)
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(act())
        models.append(nn.Sequential(*layers))
    return models


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_vectorised_zoo_matches_a_loop_of_modules(tiny_family, activation):
    config = ZooConfig(models_per_function=2, width=8, depth=2, activation=activation, steps=5, batch_size=16, seed=3)
    zoo = train_zoo(tiny_family, config)
    models = modules_from_zoo_init(config, zoo.seeds)
    opts = [torch.optim.Adam(m.parameters(), lr=config.lr) for m in models]
    gen = input_generator(config)
    coeffs = torch.as_tensor(tiny_family.coefficients, dtype=torch.float32)
    losses = []
    for step in range(config.steps):
        x = torch.rand(config.batch_size, generator=gen) * 2 - 1
        y = polynomial_targets(coeffs, x)
        row = []
        for model, opt, task in zip(models, opts, zoo.task_ids):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config)
            loss = ((model(x[:, None])[:, 0] - y[task]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            row.append(loss.item())
        losses.append(row)
    # log_every is 1 for 5 steps: every step's per-model loss is on the curve
    np.testing.assert_allclose(zoo.loss_curves, np.array(losses).T, rtol=1e-4, atol=1e-6)
    for i, model in enumerate(models):
        linears = [m for m in model if isinstance(m, nn.Linear)]
        for (w, b), lin in zip(zoo.layers, linears):
            torch.testing.assert_close(w[i].T, lin.weight.detach(), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(b[i, 0], lin.bias.detach(), rtol=1e-4, atol=1e-5)


def test_same_config_same_weights(tiny_family):
    config = ZooConfig(models_per_function=2, width=8, steps=20, batch_size=32, seed=5)
    a, b = train_zoo(tiny_family, config), train_zoo(tiny_family, config)
    for (wa, ba), (wb, bb) in zip(a.layers, b.layers):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
    c = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=8, steps=20, batch_size=32, seed=6))
    assert not torch.equal(a.layers[0][0], c.layers[0][0])


def test_models_fit_their_targets_and_split_is_by_seed(tiny_zoo):
    # tiny_zoo's config over zoo seeds 0-11 (C kernel, 1 torch thread; seed 0 also with 2) and 0-5 (autograd):
    # median fit MSE at most 0.0032 and last/first loss at most 0.021, so 0.05 and 1/5 leave 10x or more.
    assert np.median(tiny_zoo.fit_mse) < 0.05
    assert tiny_zoo.loss_curves[:, -1].mean() < tiny_zoo.loss_curves[:, 0].mean() / 5
    # every function appears in both splits, with different seeds
    for k in range(3):
        mine = tiny_zoo.task_ids == k
        assert tiny_zoo.is_train[mine].any() and (~tiny_zoo.is_train[mine]).any()
    assert len(set(tiny_zoo.seeds)) == tiny_zoo.n_models


def test_diverging_models_are_flagged_not_kept_silently(tiny_family):
    zoo = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=8, steps=30, batch_size=32, lr=10.0))
    assert zoo.failed.any()
    assert zoo.failed[~np.isfinite(zoo.fit_mse)].all()


def test_progress_callback_can_stop_early(tiny_family):
    seen = []

    def progress(step, losses):
        seen.append((step, losses.shape))
        return step < 10

    zoo = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=8, steps=100, batch_size=8), progress=progress, log_every=5)
    assert seen == [(5, (6,)), (10, (6,))]
    assert zoo.steps_done == 10
    assert zoo.loss_curves.shape == (6, 2)


def test_should_stop_is_asked_every_step_and_the_partial_window_is_logged(tiny_family):
    asked, reported = [], []

    def should_stop(step):
        asked.append(step)
        return step == 7

    zoo = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=8, steps=100, batch_size=8),
                    progress=lambda step, losses: reported.append(step), log_every=5, should_stop=should_stop)  # fmt: skip
    assert asked == list(range(1, 8)) and zoo.steps_done == 7
    assert list(zoo.log_steps) == [5, 7] and reported == [5, 7]
    assert np.isfinite(zoo.loss_curves).all() and zoo.loss_curves.shape[1] == 2
