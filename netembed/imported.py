"""Networks trained elsewhere: safetensors state_dicts of a plain nn.Sequential MLP, 1 input -> 1 output.

A file is checked before anything is parsed: it must be safetensors (8-byte header length,
then a JSON header); a pickle or a torch.save zip is refused by its first bytes and never
unpickled. Its tensors must be the Linear layers of an nn.Sequential ('0.weight',
'0.bias', '2.weight', ...; one shared prefix such as 'net.' is allowed), chained in size,
1 input and 1 output, finite. Each network becomes a one-model Zoo (zoo.py's layout:
w (1, fan_in, fan_out), b (1, 1, fan_out)), its input interval mapped onto the family's
[-1, 1] by rescaling the first layer, and is embedded by a run's trained embedder; the
run's own models give the neighbours, the linear probe's function and a ridge regression's
parameters.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load

from .config import ACTIVATIONS, ZooConfig
from .embedding import EMBED_SEED, embed
from .errors import ImportedNetworkError  # noqa: F401 - raised here; defined there so catching it needs no torch
from .zoo import Zoo

N_NEIGHBOURS = 5
RIDGE_ALPHA = 1e-3  # as protocols.parameter_regression
LINEAR_KEY = re.compile(r"^(.*?)(\d+)\.(weight|bias)$")


def check_safetensors_bytes(data: bytes, name: str) -> None:
    """Refuse anything but a safetensors file, from its first bytes alone (nothing is unpickled or run).

    safetensors: an 8-byte little-endian header length, then that many bytes of a JSON object.
    A pickle starts with 0x80 (protocol 2+) and torch.save writes a zip ('PK'): named as such."""
    header_len = struct.unpack("<Q", data[:8])[0] if len(data) >= 10 else None
    if header_len is not None and header_len <= len(data) - 8 and data[8:9] == b"{":
        try:
            json.loads(data[8 : 8 + header_len])
            return
        except (UnicodeDecodeError, ValueError):
            pass
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise ImportedNetworkError(f"{name}: a pickle / torch.save file; refused, never loaded "
                                   "(save it with safetensors.torch.save_file(model.state_dict(), path))")  # fmt: skip
    raise ImportedNetworkError(f"{name}: not a safetensors file (no JSON header after an 8-byte length)")


def read_state_dict(data: bytes, name: str) -> dict[str, torch.Tensor]:
    check_safetensors_bytes(data, name)
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as e:
        raise ImportedNetworkError(f"{name}: not a valid safetensors file ({str(e)[:150]})") from None


def mlp_layers(state: dict[str, torch.Tensor], name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Linear layers of an nn.Sequential state_dict, in order: [(weight (out, in), bias (out,))], float64."""
    parsed = {}
    for key in state:
        m = LINEAR_KEY.match(key)
        if m is None:
            raise ImportedNetworkError(f"{name}: tensor {key!r} is not a Linear layer's N.weight / N.bias")
        parsed[key] = (m.group(1), int(m.group(2)), m.group(3))
    prefixes = {p for p, _, _ in parsed.values()}
    if not parsed or len(prefixes) != 1:
        raise ImportedNetworkError(f"{name}: expected the N.weight / N.bias tensors of one nn.Sequential, "
                                   f"got {sorted(state)[:6]}")  # fmt: skip
    prefix = prefixes.pop()
    indices = sorted({i for _, i, _ in parsed.values()})
    layers = []
    for i in indices:
        w, b = state.get(f"{prefix}{i}.weight"), state.get(f"{prefix}{i}.bias")
        if w is None or b is None:
            raise ImportedNetworkError(f"{name}: layer {prefix}{i} needs both weight and bias")
        if not (w.dtype.is_floating_point and b.dtype.is_floating_point):
            raise ImportedNetworkError(f"{name}: layer {prefix}{i} is {w.dtype}, expected floating-point weights")
        if w.dim() != 2 or b.dim() != 1 or b.shape[0] != w.shape[0]:
            raise ImportedNetworkError(f"{name}: layer {prefix}{i} has weight {tuple(w.shape)} and bias "
                                       f"{tuple(b.shape)}; a Linear layer has (out, in) and (out,)")  # fmt: skip
        if layers and w.shape[1] != layers[-1][0].shape[0]:
            raise ImportedNetworkError(f"{name}: layer {prefix}{i} takes {w.shape[1]} inputs but the layer before "
                                       f"gives {layers[-1][0].shape[0]}")  # fmt: skip
        layers.append((w.double(), b.double()))
    if layers[0][0].shape[1] != 1 or layers[-1][0].shape[0] != 1:
        raise ImportedNetworkError(f"{name}: the network maps {layers[0][0].shape[1]} inputs to "
                                   f"{layers[-1][0].shape[0]} outputs; only 1 -> 1 networks can be embedded")  # fmt: skip
    if len(layers) < 2:
        raise ImportedNetworkError(f"{name}: a single Linear layer is a straight line; an MLP needs a hidden layer")
    if not all(torch.isfinite(w).all() and torch.isfinite(b).all() for w, b in layers):
        raise ImportedNetworkError(f"{name}: weights hold NaN or Inf")
    return layers


def parse_input_range(text: str) -> tuple[float, float]:
    """'LO,HI' -> (lo, hi) with finite lo < hi; ImportedNetworkError otherwise."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ImportedNetworkError(f"--input-range must be LO,HI (two numbers), got {text!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ImportedNetworkError(f"--input-range must have finite LO < HI, got {text!r}")
    return lo, hi


def as_zoo(layers, activation: str, input_range=(-1.0, 1.0)) -> Zoo:
    """One imported network as a one-model Zoo on the family's x in [-1, 1].

    The network was trained on t in [lo, hi]; t = s x + c with s = (hi - lo) / 2, c = (lo + hi) / 2,
    so its first layer W t + b becomes (W s) x + (W c + b): the same function, read on [-1, 1].
    """
    if activation not in ACTIVATIONS:
        raise ImportedNetworkError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    lo, hi = input_range
    scale, centre = (hi - lo) / 2, (lo + hi) / 2
    (w0, b0), rest = layers[0], layers[1:]
    first = (w0 * scale, b0 + w0[:, 0] * centre)
    stacked = [(w.T[None].float().contiguous(), b[None, None].float().contiguous()) for w, b in [first, *rest]]
    config = ZooConfig(width=int(w0.shape[0]), depth=len(layers) - 1, activation=activation, steps=0)
    one = np.zeros(1, dtype=np.int64)
    return Zoo(config=config, layers=stacked, task_ids=one, replicates=one, seeds=one,
               loss_curves=np.zeros((1, 0), np.float32), log_steps=np.zeros(0, np.int64), fit_mse=np.zeros(1),
               failed=np.zeros(1, dtype=bool))  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    file: str
    neighbours: list[int]  # zoo model ids, nearest first
    predicted_function: int  # the linear probe's label
    predicted_parameters: dict[str, float]  # name -> value, from a ridge regression
    embedding: list[float]

    def to_json(self) -> dict:
        return {"file": self.file, "neighbours": self.neighbours, "predicted_function": self.predicted_function,
                "predicted_parameters": self.predicted_parameters}  # fmt: skip


def zoo_embeddings(run) -> np.ndarray:
    """(n, d) the run's stored embeddings of its models, or computed as the pipeline does."""
    if run.embedder is None:
        raise ImportedNetworkError("the run has no trained embedder; make one with `python -m netembed run`")
    if run.zoo.input_dim != 1:
        raise ImportedNetworkError(f"the run's models take {run.zoo.input_dim} inputs; networks trained elsewhere "
                                   "are embedded among 1-input models only")  # fmt: skip
    if run.embedder.embeddings_ is not None:
        return np.asarray(run.embedder.embeddings_, dtype=np.float64)
    return embed(run.embedder, run.zoo, seed=EMBED_SEED)


def predict(run, named_zoos: list[tuple[str, Zoo]], k: int = N_NEIGHBOURS) -> list[Prediction]:
    """Neighbours, probe label and ridge parameters of each imported network, from the run's embedder and models."""
    from sklearn.linear_model import LogisticRegression, Ridge  # here: sklearn costs the app's first page ~1 s
    from sklearn.preprocessing import StandardScaler

    reference = zoo_embeddings(run)  # (n, d)
    ok = np.isfinite(reference).all(1)
    scaler = StandardScaler().fit(reference[ok])
    ref = scaler.transform(reference[ok])
    ids = np.flatnonzero(ok)
    labels = run.zoo.task_ids[ok]
    probe = LogisticRegression(C=10.0, max_iter=3000).fit(ref, labels)
    ridge = Ridge(alpha=RIDGE_ALPHA).fit(ref, run.family.parameters[labels])
    out = []
    for name, zoo in named_zoos:
        e = embed(run.embedder, zoo, seed=EMBED_SEED)  # (1, d)
        f = scaler.transform(e)
        order = np.argsort(((ref - f) ** 2).sum(1), kind="stable")[:k]
        params = ridge.predict(f)[0]
        out.append(Prediction(file=name, neighbours=[int(i) for i in ids[order]],
                              predicted_function=int(probe.predict(f)[0]),
                              predicted_parameters={n: float(v) for n, v in zip(run.family.parameter_names, params)},
                              embedding=[float(v) for v in e[0]]))  # fmt: skip
    return out


def load_network(data: bytes, name: str, activation: str = "relu", input_range=(-1.0, 1.0)) -> Zoo:
    """A file's bytes -> a one-model Zoo, or ImportedNetworkError naming the file and what is wrong."""
    return as_zoo(mlp_layers(read_state_dict(data, name), name), activation, input_range)
