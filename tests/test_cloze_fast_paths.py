"""The embedder's fast paths against the slow obvious references they replace.

- cls_block (the last encoder block at the cls row only, attention pooled without keys and
  values per row) vs nn.TransformerEncoder's full block, outputs and parameter gradients;
- gradients gathered from exact line-sections vs autograd through the models;
- validation and cloze R^2 from masked_error vs the full decoder's R^2.
Tolerances are float32 rounding (observed differences: about 4e-7 on outputs of size ~4).
"""

import numpy as np
import pytest
import torch

from netembed.cloze_model import Embedder
from netembed.cloze_task import GradientSource, draw_inputs, make_mask
from netembed.cloze_training import _validation_batch, masked_error_r2, masked_r2, train_embedder, validation_r2
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.gradients import line_sections
from netembed.zoo import train_zoo

SMALL = dict(d_model=16, n_heads=2, n_layers=1, n_inputs=24, models_per_batch=8, mask_ratio=0.5, lr=5e-3)


def _random_embedder(seed: int, **config) -> Embedder:
    torch.manual_seed(seed)
    emb = Embedder(ClozeConfig(**config))
    with torch.no_grad():  # trained-looking weights: LayerNorm affine and biases away from their 1 / 0 init
        for p in emb.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return emb


@pytest.mark.parametrize("n_layers,n_heads,d_model", [(1, 4, 64), (1, 1, 16), (2, 2, 16), (3, 8, 32)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_cls_block_equals_the_full_encoder_at_the_cls_row(n_layers, n_heads, d_model, mode):
    emb = _random_embedder(n_layers, n_layers=n_layers, n_heads=n_heads, d_model=d_model, bottleneck=4)
    getattr(emb, mode)()
    h = torch.randn(5, 1 + 37, d_model, generator=torch.Generator().manual_seed(1), requires_grad=True)
    fast, slow = emb.encode_cls(h), emb.encode_cls_reference(h)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    # training follows the gradients: they must agree too, for every parameter and the input rows
    weights = torch.randn(fast.shape, generator=torch.Generator().manual_seed(2))
    grads_fast = torch.autograd.grad((fast * weights).sum(), [h, *emb.parameters()], allow_unused=True)
    grads_slow = torch.autograd.grad((slow * weights).sum(), [h, *emb.parameters()], allow_unused=True)
    for (name, _), a, b in zip([("input", h), *emb.named_parameters()], grads_fast, grads_slow):
        if b is None:  # parameters the encoder does not use (decoder, bottleneck)
            assert a is None or not a.any(), name
            continue
        # relative to the tensor's largest entry (sums of many float32 products: up to 1.3e-6 observed over
        # these 8 cases); the key bias' slice of in_proj_bias is 0 in both (it cancels in the softmax)
        worst = float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
        assert worst < 1e-4, f"{name}: gradients differ by {worst:.2e} of their largest entry"


def test_encode_uses_the_fast_path_and_matches_the_reference(tiny_zoo):
    emb = _random_embedder(0, **SMALL)
    source = GradientSource(tiny_zoo, "section")
    x = draw_inputs(24, torch.Generator().manual_seed(3))
    ids = torch.arange(tiny_zoo.n_models)
    true = source.gradients(ids, x)
    masked = make_mask(source.section_ids(ids, x), 0.5, torch.Generator().manual_seed(4))
    with torch.no_grad():
        fast = emb.encode(x, true, masked)
        emb.encode_cls = emb.encode_cls_reference  # the instance attribute shadows the method
        slow = emb.encode(x, true, masked)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_gradients_from_line_sections_equal_autograd(activation):
    family = make_family(FamilyConfig(n_functions=3, seed=2))
    zoo = train_zoo(family, ZooConfig(models_per_function=4, width=16, steps=200, activation=activation, seed=2))
    source = GradientSource(zoo, "section")
    x = draw_inputs(4000, torch.Generator().manual_seed(5))
    ids = torch.tensor([0, 3, 5, 7, 11, 2])  # any order, a subset
    fast, sections = source.gradients_and_sections(ids, x)
    slow = source.gradients(ids, x)  # autograd through the models, float32
    np.testing.assert_array_equal(sections.numpy(), source.section_ids(ids, x).numpy())
    assert fast.dtype == slow.dtype == torch.float32
    # A sample within float32 rounding of a kink may fall on either side in the two computations.
    bounds = line_sections(zoo).boundaries[ids.numpy()]  # (B, P + 1)
    gap = np.abs(x.double().numpy()[None, :, None] - bounds[:, None, :]).min(-1)  # (B, N) distance to a kink
    far = gap > 1e-5
    assert far.mean() > 0.99  # the comparison covers nearly every sample
    scale = float(slow.abs().max())
    np.testing.assert_allclose(fast.numpy()[far], slow.numpy()[far], rtol=1e-5, atol=1e-6 * scale)


def test_sample_masking_keeps_autograd_gradients(tiny_zoo):
    source = GradientSource(tiny_zoo, "sample")
    x = draw_inputs(50, torch.Generator().manual_seed(6))
    ids = torch.arange(tiny_zoo.n_models)
    g, sections = source.gradients_and_sections(ids, x)
    torch.testing.assert_close(g, source.gradients(ids, x), rtol=0, atol=0)
    assert (sections == torch.arange(50)).all()


def test_validation_r2_from_masked_errors_equals_the_full_decoder(tiny_zoo):
    config = ClozeConfig(steps=40, **SMALL)
    emb = train_embedder(tiny_zoo, config)
    source = GradientSource(tiny_zoo, "section")
    val_ids = torch.as_tensor(np.flatnonzero(~tiny_zoo.is_train))
    x, true, masked = batch = _validation_batch(source, val_ids, config, "cpu")
    with torch.no_grad():
        reference = masked_r2(emb(x, true, masked), true, masked)  # decode every sample, score the masked ones
        error = emb.masked_error(x, true, masked)
    assert np.isfinite(reference)
    assert validation_r2(emb, batch) == pytest.approx(reference, abs=1e-5)
    assert masked_error_r2(error, true[masked], float(emb.grad_scale)) == pytest.approx(reference, abs=1e-5)
