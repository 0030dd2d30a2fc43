"""Networks trained elsewhere: safetensors nn.Sequential state_dicts embedded by a run's embedder; bad files refused."""

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save, save_file

from netembed.cli import main
from netembed.cloze_training import train_embedder
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.embedding import EMBED_SEED, embed
from netembed.family import make_family
from netembed.imported import ImportedNetworkError, as_zoo, load_network, mlp_layers, predict
from netembed.store import Run, save_run
from netembed.zoo import train_zoo

INPUT_RANGE = (0.0, 2.0)  # the outside networks are trained on t in [0, 2]: t = x + 1


def sequential(seed: int, width: int = 32) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(1, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                               torch.nn.ReLU(), torch.nn.Linear(width, 1))  # fmt: skip


def trained_elsewhere(family, k: int, seed: int, steps: int = 600) -> torch.nn.Sequential:
    """A plain PyTorch training loop on member k, read on t in [0, 2] (so the family's x is t - 1)."""
    net = sequential(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        t = torch.rand(256, 1, generator=g) * 2
        y = torch.as_tensor(family.values(t[:, 0].double().numpy() - 1)[k], dtype=torch.float32)[:, None]
        opt.zero_grad()
        ((net(t) - y) ** 2).mean().backward()
        opt.step()
    return net


@pytest.fixture(scope="module")
def run():
    family = make_family(FamilyConfig(n_functions=4, seed=1))
    zoo = train_zoo(family, ZooConfig(models_per_function=8, steps=600, seed=1))
    embedder = train_embedder(zoo, ClozeConfig(steps=200, seed=0))
    embedder.embeddings_ = embed(embedder, zoo, seed=EMBED_SEED)
    return Run(family=family, zoo=zoo, embedder=embedder)


def test_the_first_layer_maps_the_input_range_onto_minus_one_one():
    """as_zoo's model on x equals the torch network on t = s x + c (the slow obvious reference)."""
    net = sequential(0).double()
    layers = mlp_layers({k: v for k, v in net.state_dict().items()}, "net")
    zoo = as_zoo(layers, "relu", (-3.0, 5.0))
    x = np.linspace(-1, 1, 11)
    with torch.no_grad():
        expected = net(torch.as_tensor(4.0 * x + 1.0)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(zoo(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_networks_trained_elsewhere_are_predicted_as_their_functions(run, tmp_path):
    """Each of the 4 members, fitted by a plain nn.Sequential on [0, 2], is predicted as that member by the linear
    probe and its nearest zoo model fits it too (measured: 4 of 4 for net seeds {0, 10, 20} + k x embedder
    seeds 0-2, 36 of 36)."""
    named = []
    for k in range(4):
        path = tmp_path / f"f{k}.safetensors"
        save_file(trained_elsewhere(run.family, k, seed=10 + k).state_dict(), path)
        named.append((path.name, load_network(path.read_bytes(), path.name, "relu", INPUT_RANGE)))
    results = predict(run, named)
    assert [r.predicted_function for r in results] == [0, 1, 2, 3]
    assert [int(run.zoo.task_ids[r.neighbours[0]]) for r in results] == [0, 1, 2, 3]
    assert all(len(r.neighbours) == 5 and set(r.predicted_parameters) == set(run.family.parameter_names)
               for r in results)  # fmt: skip


def test_embed_command_writes_one_object_per_file(run, tmp_path, capsys):
    save_run(run, tmp_path / "run")
    path = tmp_path / "net.safetensors"
    save_file(trained_elsewhere(run.family, 2, seed=5, steps=300).state_dict(), path)
    out = tmp_path / "out.json"
    assert main(["embed", "--run", str(tmp_path / "run"), "--input-range", "0,2", "--out", str(out), str(path)]) == 0
    (row,) = json.loads(out.read_text())
    assert set(row) == {"file", "neighbours", "predicted_function", "predicted_parameters"}
    assert row["file"] == str(path) and len(row["neighbours"]) == 5
    assert "nearest models" in capsys.readouterr().out
    assert main(["embed", "--run", str(tmp_path / "run"), "--input-range", "2,0", str(path)]) != 0
    assert "--input-range" in capsys.readouterr().err


def state(**shapes) -> dict:
    return {k: torch.zeros(s) for k, s in shapes.items()}


@pytest.mark.parametrize("tensors, match", [
    (state(foo=(3,)), "not a Linear layer"),
    ({**state(**{"0.weight": (8, 1), "0.bias": (8,), "2.weight": (1, 8)})}, "needs both weight and bias"),
    (state(**{"0.weight": (8, 1), "0.bias": (8,), "2.weight": (1, 4), "2.bias": (1,)}), "takes 4 inputs"),
    (state(**{"0.weight": (8, 2), "0.bias": (8,), "2.weight": (1, 8), "2.bias": (1,)}), "maps 2 inputs to 1"),
    (state(**{"0.weight": (8, 1), "0.bias": (8,), "2.weight": (3, 8), "2.bias": (3,)}), "to 3 outputs"),
    (state(**{"0.weight": (8, 1), "0.bias": (7,), "2.weight": (1, 8), "2.bias": (1,)}), "a Linear layer has"),
    (state(**{"0.weight": (1, 1), "0.bias": (1,)}), "hidden layer"),
    (state(**{"a.0.weight": (8, 1), "b.0.bias": (8,)}), "one nn.Sequential"),
])  # fmt: skip
def test_tensors_that_do_not_form_a_one_to_one_mlp_are_refused(tensors, match):
    with pytest.raises(ImportedNetworkError, match=match):
        load_network(save(tensors), "bad.safetensors")


def test_non_finite_weights_are_refused():
    tensors = sequential(0).state_dict()
    tensors["2.weight"][3, 4] = float("nan")
    with pytest.raises(ImportedNetworkError, match="NaN or Inf"):
        load_network(save(dict(tensors)), "nan.safetensors")


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for data in (pickle.dumps(Exploit()), b"PK\x03\x04 a torch.save zip"):
        with pytest.raises(ImportedNetworkError, match="pickle / torch.save file; refused"):
            load_network(data, "model.pt")
    with pytest.raises(ImportedNetworkError, match="not a safetensors file"):
        load_network(b"just some text, not tensors", "notes.txt")
    assert not marker.exists()


def test_imported_points_are_highlighted_stars_with_their_prediction():
    import plotly.graph_objects as go

    from netembed.plots import add_imported_points

    fig = add_imported_points(go.Figure(), np.array([[0.5, -1.0], [2.0, 3.0]]), ["a.safetensors", "b.safetensors"],
                              [1, 3], [[4, 5, 6], [7, 8, 9]])  # fmt: skip
    assert [t.marker.symbol for t in fig.data] == ["star", "star"]
    assert fig.data[1].x == (2.0,) and "predicted f3" in fig.data[1].hovertemplate
    assert "[7, 8, 9]" in fig.data[1].hovertemplate and fig.data[0].name == "a.safetensors (f1)"
