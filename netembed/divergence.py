"""Divergence of zoo training: which models blew up, and when a whole zoo is unusable.

Every model trains on its own loss (zoo.py), so a model whose loss blew up or became
NaN/Inf is flagged `failed` (its fit error is far over `fail_relative_mse`) without touching the others, and the embedder trains only on models that
did not fail. A zoo in which *every* model diverged holds nothing to study: that is the
learning rate's fault, reported as a bad setting rather than saved as a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .config import ConfigError

if TYPE_CHECKING:  # numpy arrays only here: showing a zoo's failures needs no torch
    from .zoo import Zoo


class DivergenceError(ConfigError):
    """Every model of the zoo diverged: the learning rate (or the scale of the task) is too large."""


BLOW_UP = 2.0  # a final training loss this many times the first one means the model got worse, not better


def diverged(zoo: Zoo) -> np.ndarray:
    """(n,) bool: models whose weights or fit error hold NaN/Inf, or whose training loss blew up.

    With Adam a too-large learning rate rarely gives NaN on this task: the loss climbs from
    ~0.3 to hundreds and stays there. Ending training worse than the random init is divergence.
    """
    if hasattr(zoo, "parts"):  # a mixed zoo: each part's own curve (a cancelled part's is shorter, not NaN-padded)
        return np.concatenate([diverged(p) for p in zoo.parts])
    finite = finite_models(zoo)
    curves = zoo.loss_curves
    blew_up = ~(curves[:, -1] <= BLOW_UP * curves[:, 0]) if curves.shape[1] >= 2 else np.zeros(len(finite), bool)
    return ~finite | blew_up


def finite_models(zoo: Zoo) -> np.ndarray:
    """(n,) bool: the model's weights and fit error are all finite."""
    if hasattr(zoo, "parts"):  # a mixed zoo (mixed_zoo.py): part after part
        return np.concatenate([finite_models(p) for p in zoo.parts])
    finite = np.isfinite(zoo.fit_mse)
    for w, b in zoo.layers:
        finite &= np.isfinite(w.detach().cpu().numpy()).all((1, 2)) & np.isfinite(b.detach().cpu().numpy()).all((1, 2))
    return finite


def finite_median(values) -> float:
    """Median of the finite values (a diverged model's NaN/Inf loss must not hide the others'); NaN if none."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    return float(np.median(finite)) if finite.size else float("nan")


def failed(zoo: Zoo) -> np.ndarray:
    """(n,) bool: the one meaning of "failed" in every message: the model did not fit its target (fit MSE on the
    dense grid over config.fail_relative_mse of the target's variance, or not finite) or it diverged. Diverged models are a subset the embedder
    leaves out; the others failed to fit but still compute a function, so the embedder keeps them."""
    return np.asarray(zoo.failed, dtype=bool) | diverged(zoo)


def mostly_failed(zoo: Zoo) -> bool:
    """More than half of the models failed: a zoo whose numbers downstream should not be trusted."""
    return zoo.n_models > 0 and 2 * int(failed(zoo).sum()) > zoo.n_models


def quality_note(zoo: Zoo) -> str | None:
    """One line for the user when any model failed, else None; always the same words for the same thing."""
    n_failed, n_diverged = int(failed(zoo).sum()), int(diverged(zoo).sum())
    if not n_failed:
        return None
    text = (f"{n_failed} of {zoo.n_models} models failed to fit (fit MSE over {zoo.config.fail_relative_mse:g} of the "
            f"target's variance on the dense grid{', or diverged' if n_diverged else ''})")  # fmt: skip
    if n_diverged:
        text += (f"; {n_diverged} of them diverged (loss blew up or became NaN/Inf) at lr {zoo.config.lr:g} "
                 "and are left out of the embedder")  # fmt: skip
    if n_failed > n_diverged:
        text += f"; {n_failed - n_diverged} did not diverge and still train the embedder"
    if mostly_failed(zoo):
        text = f"Most models failed: {text}. Try more steps or a smaller learning rate (the default is 0.01)"
    return text + "."


def divergence_note(zoo: Zoo) -> str | None:
    """One line for the user when some models diverged, else None."""
    bad = int(diverged(zoo).sum())
    if not bad:
        return None
    return (f"{bad} of {zoo.n_models} models diverged (loss blew up or became NaN/Inf) at lr {zoo.config.lr:g}; "
            "they are flagged failed and left out of the embedder")  # fmt: skip


def check_not_all_diverged(zoo: Zoo) -> None:
    """Raise DivergenceError naming the learning rate when no model survived training."""
    if zoo.n_models and diverged(zoo).all():
        raise DivergenceError(
            f"lr {zoo.config.lr:g} made training diverge: the loss of all {zoo.n_models} models blew up or "
            "became NaN/Inf; "
            f"lower lr (the default is 0.01)"
        )


def zoo_report(zoo: Zoo) -> dict:
    """The zoo's health in numbers (report.json's "zoo"): fit errors, failed and diverged models, time."""
    finite = zoo.fit_mse[np.isfinite(zoo.fit_mse)]
    median = finite_median(zoo.fit_mse)
    return {
        "n_models": int(zoo.n_models),
        "fit_mse_median": median if np.isfinite(median) else None,
        "fit_mse_worst": float(finite.max()) if finite.size else None,
        "n_failed": int(failed(zoo).sum()),
        "n_diverged": int(diverged(zoo).sum()),
        "steps_done": int(zoo.steps_done),
        "seconds": round(float(zoo.seconds), 3),
    }
