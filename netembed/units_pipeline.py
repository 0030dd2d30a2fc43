"""The units study end to end: a digits network -> its hidden units' descriptions -> module scores.

    UnitsConfig      -> digits network (planted modules, or the plain 10-class MLP)
    UnitEmbedConfig  -> the units as 1D functions (unit_cloze.py)
    ClozeConfig      -> the cloze embedder on them -> `cloze` descriptions
                        baselines (unit_baselines.py) on the same units
                        -> report: for each description, NMI / ARI / probe accuracy against the
                           planted modules (only where the network has them)

Scores are per hidden layer (a unit's module is clustered among the units of its own layer:
the descriptions of different layers live in different spaces); a description's headline
`nmi`, `ari`, `probe_accuracy` is the mean over hidden layers, with each layer's under
`layers`, and the score on all hidden units together under `all` where the description has
one width across layers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .config import ClozeConfig, to_dict
from .digits import DigitsNet, UnitsConfig, load_digits_split, off_block_fraction, plain_digits_net, planted_modules_net
from .unit_baselines import baseline_features, score_descriptions
from .unit_cloze import UnitCloze, UnitEmbedConfig, unit_cloze
from .units import unit_layers, unit_modules, unit_train_split

NETWORKS = ("planted", "plain")
N_FIXED = 32  # fixed test digits at which the activation and gradient baselines read every unit
METRICS = ("nmi", "ari", "probe_accuracy")


@dataclass
class UnitsRun:
    """Everything one units study produced; `report` is what report.json holds."""

    network: str  # "planted" or "plain"
    units_config: UnitsConfig
    embed_config: UnitEmbedConfig
    cloze_config: ClozeConfig
    net: DigitsNet
    cloze: UnitCloze
    is_train: np.ndarray  # (n_units,) bool: the units the embedder and the probes trained on
    report: dict


def build_network(network: str, config: UnitsConfig, digits) -> DigitsNet:
    if network == "planted":
        return planted_modules_net(digits, config)
    if network == "plain":
        return plain_digits_net(digits, config)
    raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")


def headline(scopes: dict, n_layers: int) -> dict:
    """{layer0: {...}, ..., all?: {...}} -> {nmi, ari, probe_accuracy (means over layers), layers, all?}."""
    layers = {f"layer{i}": scopes[f"layer{i}"] for i in range(n_layers)}
    out = {m: float(np.mean([s[m] for s in layers.values()])) for m in METRICS}
    out["layers"] = layers
    if "all" in scopes:
        out["all"] = scopes["all"]
    return out


def run_units(network: str, units_config: UnitsConfig, embed_config: UnitEmbedConfig, cloze_config: ClozeConfig,
              progress=None) -> UnitsRun:  # fmt: skip
    """Train the network, the embedder on its units, describe and score them.

    progress(stage, fraction, info) is told about each stage ("network", "embedder", "scores")
    and may return False during the embedder's training to stop it early.
    """
    tell = progress or (lambda *a: None)
    seconds = {}
    start = time.perf_counter()
    tell("network", 0.0, {})
    digits = load_digits_split(units_config.test_fraction, units_config.seed)
    net = build_network(network, units_config, digits)
    seconds["network"] = time.perf_counter() - start
    tell("network", 1.0, {})

    planted = net.unit_modules is not None
    labels = unit_modules(net) if planted else unit_layers(net)
    split = unit_train_split(net, embed_config.train_fraction, units_config.seed)
    is_train = split[0] < split[1]
    steps = max(1, cloze_config.steps)

    def embedder_progress(step, loss, r2):
        return tell("embedder", step / steps, {"loss": float(loss), "r2": float(r2)})

    start = time.perf_counter()
    tell("embedder", 0.0, {})
    cloze = unit_cloze(net, digits, labels, split, embed_config, cloze_config, units_config.seed, embedder_progress)
    seconds["embedder"] = time.perf_counter() - start

    start = time.perf_counter()
    tell("scores", 0.0, {})
    report = {
        "network": network_summary(network, net),
        "config": {"units": to_dict(units_config), "embed": to_dict(embed_config), "cloze": to_dict(cloze_config)},
        "embedder": {"cloze_r2": _finite(cloze.embedder.cloze_r2_), "steps_done": int(cloze.embedder.steps_done_),
                     "seconds": float(cloze.embedder.seconds_), "n_line_models": int(len(cloze.line_embeddings))},
        "n_units": int(len(labels)),
        "n_train_units": int(is_train.sum()),
    }  # fmt: skip
    if planted:
        feats = {"cloze": cloze.features}
        feats.update(baseline_features(net, digits.x_train, digits.x_test[:N_FIXED], is_train))
        scored = score_descriptions(net, feats, labels, is_train, units_config.seed)
        report["modules"] = {name: headline(scopes, len(net.widths)) for name, scopes in scored.items()}
    seconds["scores"] = time.perf_counter() - start
    report["seconds"] = seconds
    tell("scores", 1.0, {})
    return UnitsRun(network, units_config, embed_config, cloze_config, net, cloze, is_train, report)


def network_summary(network: str, net: DigitsNet) -> dict:
    out = {"kind": network, "widths": net.widths, "outputs": list(net.task_names),
           "test_accuracy": [float(a) for a in net.test_accuracy]}  # fmt: skip
    if net.unit_modules is not None:
        out["off_block_fraction"] = off_block_fraction(net)
    return out


def _finite(v: float):
    return float(v) if np.isfinite(v) else None


def unit_features_for_plot(run: UnitsRun) -> np.ndarray:
    """(n_units, d) one description per unit with one width for every layer: each layer's cloze
    features standardised and zero-padded to the widest (for a joint picture of all units)."""
    feats = run.cloze.features
    d = max(f.shape[1] for f in feats)
    rows = []
    for f in feats:
        f = (f - f.mean(0)) / (f.std(0) + 1e-12)
        rows.append(np.pad(f, ((0, 0), (0, d - f.shape[1]))))
    return np.concatenate(rows)

