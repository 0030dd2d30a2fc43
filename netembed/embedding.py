"""Using a trained embedder: the embeddings of a zoo's models, and cloze examples to look at."""

from __future__ import annotations

import numpy as np
import torch

from .cloze_model import Embedder
from .cloze_task import GradientSource, draw_inputs, region_mask
from .zoo import Zoo

EMBED_INPUTS = 256  # inputs per model when embedding: more than training uses, for a steadier embedding
EMBED_SEED = 12345  # input draw used to embed every model (independent of the training draws)


def embed(embedder: Embedder, zoo: Zoo, n_inputs: int | None = None, seed: int = 0, batch: int = 256) -> np.ndarray:
    """Embeddings of every model (both splits) from fresh inputs, all gradients visible -> (n_models, bottleneck)."""
    device = embedder.grad_scale.device
    source = GradientSource(zoo, "sample", device)  # no masking here, so no sections needed
    g = torch.Generator().manual_seed(seed)
    x = draw_inputs(n_inputs or EMBED_INPUTS, g, device, source.input_dim)
    out = []
    embedder.eval()
    with torch.no_grad():
        for lo in range(0, zoo.n_models, batch):
            ids = torch.arange(lo, min(lo + batch, zoo.n_models), device=device)
            true = source.gradients(ids, x)
            out.append(embedder.encode(x, true, torch.zeros(true.shape[:2], dtype=torch.bool, device=device)))
    return torch.cat(out).double().cpu().numpy()


def cloze_examples(embedder: Embedder, zoo: Zoo, model_ids, seed: int = 0) -> list[dict]:
    """One masked example per model, sorted by x: x, true gradient, masked (bool), predicted gradient.

    d > 1: x (N, d) unsorted, gradients (N, d), masked (N,), and "region" (N,) each sample's region id."""
    device = embedder.grad_scale.device
    source = GradientSource(zoo, embedder.mask_unit_, device)
    ids = torch.as_tensor(np.asarray(model_ids, dtype=np.int64), device=device)
    g = torch.Generator().manual_seed(seed)
    x = draw_inputs(embedder.config.n_inputs, g, device, source.input_dim)
    x = x.sort().values if source.input_dim == 1 else x
    true = source.gradients(ids, x)
    sections = source.section_ids(ids, x)
    masked = region_mask(sections, embedder.config.mask_ratio, g, source.input_dim)
    with torch.no_grad():
        pred = embedder(x, true, masked)
    xs = x.cpu().numpy()
    out = [{"model": int(i), "x": xs.copy(), "gradient": true[j].cpu().numpy(), "masked": masked[j].cpu().numpy(),
            "predicted": pred[j].cpu().numpy()} for j, i in enumerate(ids.tolist())]  # fmt: skip
    if source.input_dim > 1:
        for j, row in enumerate(out):
            row["region"] = sections[j].cpu().numpy()
    return out
