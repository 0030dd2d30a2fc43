import numpy as np
import pytest
import torch

from netembed.config import ZooConfig
from netembed.gradients import NoExactSections, input_gradients, line_sections
from netembed.zoo import activation_fn, train_zoo


def autograd_per_model(zoo, x):
    """Slow, obvious reference: autograd through each model separately, in float64."""
    act = activation_fn(zoo.config.activation)
    out = []
    for i in range(zoo.n_models):
        xs = torch.as_tensor(x, dtype=torch.float64).clone().requires_grad_()
        h = xs[:, None]
        for j, (w, b) in enumerate(zoo.layers):
            h = h @ w[i].double() + b[i, 0].double()
            if j < len(zoo.layers) - 1:
                h = act(h)
        (g,) = torch.autograd.grad(h.sum(), xs)
        out.append(g.numpy())
    return np.stack(out)


@pytest.fixture(scope="module", params=[("relu", 2), ("leaky_relu", 3)])
def pl_zoo(request, tiny_family):
    activation, depth = request.param
    return train_zoo(tiny_family, ZooConfig(models_per_function=3, width=12, depth=depth, activation=activation, steps=60, batch_size=64))


def test_batched_gradients_match_per_model_autograd_and_finite_differences(tiny_zoo):
    x = np.linspace(-0.99, 0.99, 301)
    g = input_gradients(tiny_zoo, x)
    np.testing.assert_allclose(g, autograd_per_model(tiny_zoo, x), rtol=1e-4, atol=1e-4)
    # per-model inputs, too
    xm = np.random.default_rng(0).uniform(-1, 1, (tiny_zoo.n_models, 50))
    np.testing.assert_allclose(input_gradients(tiny_zoo, xm)[2], input_gradients(tiny_zoo, xm[2])[2], rtol=1e-6)


def test_sections_match_dense_autograd_and_finite_differences(pl_zoo):
    sections = line_sections(pl_zoo)
    x = np.random.default_rng(1).uniform(-1, 1, 4000)
    np.testing.assert_allclose(sections.gradient(x), autograd_per_model(pl_zoo, x), rtol=1e-4, atol=1e-4)
    # finite differences inside each section (away from its edges) see the same slope
    for i in range(pl_zoo.n_models):
        edges, slopes, _ = sections.model(i)
        wide = np.diff(edges) > 1e-3
        mids = (edges[:-1] + edges[1:])[wide] / 2
        h = np.diff(edges)[wide] / 4
        fd = (pl_zoo(mids + h)[i] - pl_zoo(mids - h)[i]) / (2 * h)
        np.testing.assert_allclose(fd, slopes[wide], rtol=1e-2, atol=2e-3)


def test_sections_reproduce_the_model_and_are_continuous(pl_zoo):
    sections = line_sections(pl_zoo)
    x = np.linspace(-1, 1, 5001)
    np.testing.assert_allclose(sections.evaluate(x), pl_zoo(x), atol=2e-5)
    for i in range(pl_zoo.n_models):
        edges, slopes, intercepts = sections.model(i)
        assert edges[0] == -1 and edges[-1] == 1 and np.all(np.diff(edges) > 0)
        inner = edges[1:-1]  # neighbouring pieces meet at each breakpoint
        np.testing.assert_allclose(slopes[:-1] * inner + intercepts[:-1], slopes[1:] * inner + intercepts[1:], atol=1e-5)
    # every sample falls in a real section
    idx = sections.section_index(x)
    assert (idx >= 0).all() and (idx < sections.n_sections[:, None]).all()


def test_each_relu_kink_of_a_one_layer_net_is_found(tiny_family):
    zoo = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=10, depth=1, steps=0))
    sections = line_sections(zoo)
    w, b = zoo.layers[0][0][:, 0].double().numpy(), zoo.layers[0][1][:, 0].double().numpy()
    for i in range(zoo.n_models):
        kinks = -b[i] / w[i]
        expected = np.sort(kinks[(kinks > -1) & (kinks < 1)])
        np.testing.assert_allclose(sections.model(i)[0][1:-1], expected, atol=1e-9)


def test_smooth_activations_say_there_are_no_sections(tiny_family):
    zoo = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=4, activation="tanh", steps=0))
    with pytest.raises(NoExactSections, match="tanh"):
        line_sections(zoo)
    assert input_gradients(zoo, np.zeros(3)).shape == (6, 3)
