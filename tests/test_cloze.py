import numpy as np
import pytest
import torch

from netembed.cloze_model import Embedder, fourier
from netembed.cloze_task import GradientSource, draw_inputs, make_mask
from netembed.cloze_training import relative_to_model, train_embedder
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.embedding import cloze_examples, embed
from netembed.family import make_family
from netembed.gradients import input_gradients, line_sections
from netembed.store import Run, load_run, save_run
from netembed.zoo import train_zoo

SMALL = dict(d_model=16, n_heads=2, n_layers=1, n_inputs=24, models_per_batch=8, mask_ratio=0.5, lr=5e-3)


@pytest.fixture(scope="module")
def trained(tiny_zoo):
    return train_embedder(tiny_zoo, ClozeConfig(steps=150, **SMALL))


def test_section_masking_hides_whole_sections_and_keeps_some_visible():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 7, (50, 40), generator=g)  # (B, N) section of each sample
    masked = make_mask(ids, 0.5, g)
    for row_ids, row_mask in zip(ids, masked):
        for s in row_ids.unique():
            assert row_mask[row_ids == s].all() or not row_mask[row_ids == s].any(), "a section was split"
        present = len(row_ids.unique())
        hidden = len(row_ids[row_mask].unique())
        assert 1 <= hidden <= max(1, present - 1)
        assert hidden == max(1, min(round(0.5 * present), present - 1))


def test_section_ids_match_the_exact_line_sections(tiny_zoo):
    source = GradientSource(tiny_zoo, "section")
    x = draw_inputs(200, torch.Generator().manual_seed(1))
    ids = torch.arange(tiny_zoo.n_models)
    reference = line_sections(tiny_zoo).section_index(x.double().numpy())  # numpy searchsorted per model
    np.testing.assert_array_equal(source.section_ids(ids, x).numpy(), reference)
    np.testing.assert_allclose(source.gradients(ids, x).numpy(), input_gradients(tiny_zoo, x.numpy()), atol=1e-6)


def masked_batch(zoo, seed: int, ratio: float):
    """Every model of the zoo at 30 fresh inputs, whole sections masked: x (30,), true (n, 30), masked (n, 30), g."""
    source = GradientSource(zoo, "section")
    g = torch.Generator().manual_seed(seed)
    x = draw_inputs(30, g)
    ids = torch.arange(zoo.n_models)
    true = source.gradients(ids, x)
    return x, true, make_mask(source.section_ids(ids, x), ratio, g), g


def test_masked_gradients_never_reach_the_encoder(trained, tiny_zoo):
    x, true, masked, g = masked_batch(tiny_zoo, seed=2, ratio=0.5)
    garbage = torch.where(masked, torch.randn(true.shape, generator=g) * 100, true)
    with torch.no_grad():
        a, b = trained.encode(x, true, masked), trained.encode(x, garbage, masked)
    assert masked.any()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # ...while a visible gradient does reach it
    visible_changed = torch.where(~masked, true + 1.0, true)
    with torch.no_grad():
        assert not torch.allclose(a, trained.encode(x, visible_changed, masked))


def test_encoder_is_permutation_invariant_and_takes_any_number_of_inputs(trained, tiny_zoo):
    source = GradientSource(tiny_zoo, "sample")
    g = torch.Generator().manual_seed(3)
    ids = torch.arange(tiny_zoo.n_models)
    x = draw_inputs(50, g)
    true = source.gradients(ids, x)
    masked = make_mask(source.section_ids(ids, x), 0.3, g)
    perm = torch.randperm(50, generator=g)
    with torch.no_grad():
        a = trained.encode(x, true, masked)
        b = trained.encode(x[perm], true[:, perm], masked[:, perm])
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    z = embed(trained, tiny_zoo, n_inputs=500)  # 20x the training inputs
    assert z.shape == (tiny_zoo.n_models, trained.config.bottleneck) and np.isfinite(z).all()


def late_over_early_loss(embedder) -> float:
    """Mean training loss of the second half of the curve over that of the first half (< 1: it learned)."""
    curve = np.asarray(embedder.loss_curve_)
    return float(curve[len(curve) // 2 :].mean() / curve[: len(curve) // 2].mean())


# 150 steps on the tiny zoo barely start learning, and one seed's curves are noisy. Measured on
# embedder seeds 0-19 (tiny_zoo from the C kernel, 1 torch thread, AMD EPYC under load; seed 0 again
# with 2 threads gave the same 0.86; zoos trained by autograd moved loss ratios by at most 0.02):
# late/early loss mean 0.80, sd 0.07, max 0.93 for a single seed, max 0.86 for the mean of any 3
# consecutive seeds. Single-seed checks that were used before failed on some seeds: the last 10 logged
# losses over the first 5 went up to 1.02 (2 of 20 seeds above 1), and the held-out R^2 fell over
# training on 4 of 20 seeds. So: the mean of 3 seeds must stay under 0.92 (~3 sd of a 3-seed mean
# above 0.80), and every single seed must still go down (< 1).
LEARNING_SEEDS = (0, 1, 2)


def test_training_learns_and_records_its_curves(trained, tiny_zoo):
    assert trained.steps_done_ == 150
    assert len(trained.loss_curve_) == len(trained.log_steps_) == len(trained.r2_curve_) > 10
    assert np.isfinite(trained.r2_curve_).all() and np.isfinite(trained.cloze_r2_) and trained.seconds_ > 0
    assert "bottleneck 4" in trained.describe()
    ratios = [late_over_early_loss(trained)]  # trained is seed 0
    ratios += [late_over_early_loss(train_embedder(tiny_zoo, ClozeConfig(steps=150, seed=s, **SMALL))) for s in LEARNING_SEEDS[1:]]
    assert np.mean(ratios) < 0.92 and max(ratios) < 1.0, ratios


def test_training_is_seeded(tiny_zoo):
    state = torch.random.get_rng_state()
    a = train_embedder(tiny_zoo, ClozeConfig(steps=5, **SMALL))
    assert torch.equal(torch.random.get_rng_state(), state), "training must not move torch's global generator"
    b = train_embedder(tiny_zoo, ClozeConfig(steps=5, **SMALL))
    np.testing.assert_array_equal(embed(a, tiny_zoo), embed(b, tiny_zoo))


def test_progress_false_stops_early_and_keeps_what_was_learned(tiny_zoo):
    seen = []

    def stop(step, loss, r2):
        seen.append((step, loss, r2))
        return False

    emb = train_embedder(tiny_zoo, ClozeConfig(steps=100, **SMALL), progress=stop)
    assert emb.steps_done_ == seen[0][0] < 100 and len(emb.loss_curve_) == 1
    assert isinstance(seen[0][1], float)


def test_state_round_trips_through_a_run_folder(tmp_path, trained, tiny_family, tiny_zoo):
    trained.embeddings_ = embed(trained, tiny_zoo)
    save_run(Run(family=tiny_family, zoo=tiny_zoo, embedder=trained), tmp_path / "r")
    loaded = load_run(tmp_path / "r").embedder
    assert loaded.config == trained.config and loaded.mask_unit_ == trained.mask_unit_
    np.testing.assert_allclose(loaded.embeddings_, trained.embeddings_, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(loaded.loss_curve_, trained.loss_curve_)
    np.testing.assert_array_equal(embed(loaded, tiny_zoo), embed(trained, tiny_zoo))
    assert loaded.cloze_r2_ == pytest.approx(trained.cloze_r2_)


def test_from_state_refuses_weights_of_another_shape(trained):
    tensors, meta = trained.to_state()
    meta = {**meta, "config": {**meta["config"], "d_model": 32}}
    with pytest.raises(ValueError, match="do not match"):
        Embedder.from_state(tensors, meta)


def test_cloze_examples_show_masked_truth_and_predictions(trained, tiny_zoo):
    examples = cloze_examples(trained, tiny_zoo, [0, 5], seed=1)
    assert [e["model"] for e in examples] == [0, 5]
    for e in examples:
        n = trained.config.n_inputs
        assert e["x"].shape == e["gradient"].shape == e["masked"].shape == e["predicted"].shape == (n,)
        assert np.all(np.diff(e["x"]) >= 0) and e["masked"].dtype == bool and e["masked"].any()


def test_smooth_activation_falls_back_to_sample_masking_with_a_note():
    family = make_family(FamilyConfig(n_functions=2, seed=3))
    zoo = train_zoo(family, ZooConfig(models_per_function=3, width=8, activation="tanh", steps=20))
    emb = train_embedder(zoo, ClozeConfig(steps=3, **SMALL))
    assert emb.mask_unit_ == "sample" and "per-sample" in emb.notes_[0]


def test_masked_error_equals_the_full_decoder_at_the_masked_samples(trained, tiny_zoo):
    x, true, masked, _ = masked_batch(tiny_zoo, seed=4, ratio=0.4)
    with torch.no_grad():
        reference = ((trained(x, true, masked) - true) / trained.grad_scale)[masked]  # decode everything
        torch.testing.assert_close(trained.masked_error(x, true, masked), reference, rtol=1e-5, atol=1e-6)


def test_a_diverged_model_is_left_out_of_training_and_poisons_no_other_embedding(tiny_zoo):
    from netembed.zoo import Zoo

    layers = [(w.clone(), b.clone()) for w, b in tiny_zoo.layers]
    layers[1][0][0] = float("nan")  # model 0 (training split) diverged
    fit_mse = tiny_zoo.fit_mse.copy()
    fit_mse[0] = np.nan
    poisoned = Zoo(**{**tiny_zoo.__dict__, "layers": layers, "fit_mse": fit_mse})
    emb = train_embedder(poisoned, ClozeConfig(steps=6, **SMALL))
    assert np.isfinite(emb.loss_curve_).all() and np.isfinite(emb.cloze_r2_)
    z = embed(emb, poisoned)
    assert np.isfinite(z[1:]).all()


def test_held_out_models_never_influence_training(tiny_zoo):
    from netembed.zoo import Zoo

    held_out = torch.as_tensor(~tiny_zoo.is_train)
    layers = [(torch.where(held_out[:, None, None], -3 * w, w), b) for w, b in tiny_zoo.layers]
    changed = Zoo(**{**tiny_zoo.__dict__, "layers": layers})  # other functions on the held-out seeds
    a = train_embedder(tiny_zoo, ClozeConfig(steps=6, **SMALL))
    b = train_embedder(changed, ClozeConfig(steps=6, **SMALL))
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not np.array_equal(a.r2_curve_, b.r2_curve_)  # the validation R^2 does look at them


def test_relative_loss_divides_each_masked_error_by_its_own_models_rms():
    """relative_to_model against a loop over the masked samples (1D errors (M,) and d-vector errors (M, d))."""
    g = torch.Generator().manual_seed(0)
    true = torch.randn(3, 10, generator=g) * torch.tensor([[0.1], [1.0], [30.0]])  # (B, N): very different scales
    true[0] = 0.0  # a flat model: its RMS is floored, not zero
    masked = torch.rand(3, 10, generator=g) < 0.4
    masked[:, 0] = True
    scale = 2.0
    error = torch.randn(int(masked.sum()), generator=g)
    got = relative_to_model(error, true, masked, scale)
    want, k = [], 0
    for i in range(3):
        rms = max(float(np.sqrt(np.mean((true[i].numpy() / scale) ** 2))), 1e-3)
        for j in range(10):
            if masked[i, j]:
                want.append(float(error[k]) / rms)
                k += 1
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    error_d = torch.randn(int(masked.sum()), 2, generator=g)
    true_d = torch.stack([true, 2 * true], -1)  # (B, N, 2)
    rms_d = np.maximum(np.sqrt(((true_d.numpy() / scale) ** 2).reshape(3, -1).mean(1)), 1e-3)
    rows = masked.nonzero(as_tuple=True)[0].numpy()
    np.testing.assert_allclose(relative_to_model(error_d, true_d, masked, scale).numpy(),
                               error_d.numpy() / rms_d[rows, None], rtol=1e-6)  # fmt: skip


def test_model_loss_scale_trains_a_finite_embedder_of_its_own(tiny_zoo):
    zoo_scale = train_embedder(tiny_zoo, ClozeConfig(steps=20, **SMALL))
    model_scale = train_embedder(tiny_zoo, ClozeConfig(steps=20, loss_scale="model", **SMALL))
    assert np.isfinite(model_scale.loss_curve_).all() and np.isfinite(model_scale.cloze_r2_)
    assert not np.allclose(embed(zoo_scale, tiny_zoo), embed(model_scale, tiny_zoo))


def _original_encode(emb: Embedder, x, g, masked):
    """Embedder.encode for d = 1 as written before input_scale existed: one gradient channel in zoo units."""
    visible = (~masked).to(g.dtype)
    feats = torch.cat([fourier(x.expand_as(g), emb.config.n_freqs), (g / emb.grad_scale * visible)[..., None],
                       masked.to(g.dtype)[..., None]], -1)  # fmt: skip
    h = torch.cat([emb.cls.expand(len(g), -1, -1), emb.tokens(feats)], 1)
    return emb.bottleneck(emb.norm(emb.encode_cls(h)))


def _cloze_inputs(tiny_zoo, seed=0):
    g = torch.Generator().manual_seed(seed)
    source = GradientSource(tiny_zoo, "sample")
    x = draw_inputs(24, g)
    true = source.gradients(torch.arange(tiny_zoo.n_models), x) * torch.linspace(0.1, 20, tiny_zoo.n_models)[:, None]
    true[0] = 0.0  # a flat model: its RMS is floored, its log finite
    return x, true, torch.rand(true.shape, generator=g) < 0.3


def test_default_input_scale_is_the_original_encoder(tiny_zoo):
    """input_scale "zoo" (the default) keeps the token MLP's shape (stored embedders load) and its numbers exactly."""
    torch.manual_seed(0)
    emb = Embedder(ClozeConfig(**SMALL)).eval()
    emb.grad_scale.fill_(3.0)
    assert emb.tokens[0].in_features == 1 + 2 * emb.config.n_freqs + 2
    x, true, masked = _cloze_inputs(tiny_zoo)
    with torch.no_grad():
        assert torch.equal(emb.encode(x, true, masked), _original_encode(emb, x, true, masked))


def test_model_input_scale_against_a_loop_over_models(tiny_zoo):
    """input_scale "model": each model's token gradients divided by the RMS of its VISIBLE gradients (zoo units,
    floored), log(RMS) as one more channel; a plain per-model loop builds the same tokens."""
    torch.manual_seed(0)
    emb = Embedder(ClozeConfig(input_scale="model", **SMALL)).eval()
    emb.grad_scale.fill_(3.0)
    x, true, masked = _cloze_inputs(tiny_zoo)
    rows = []
    for i in range(len(true)):
        seen = true[i][~masked[i]].double().numpy() / 3.0
        rms = max(float(np.sqrt(np.mean(seen**2))), 1e-3)
        gi = np.where(masked[i].numpy(), 0.0, true[i].double().numpy() / 3.0 / rms)
        feats = np.concatenate([fourier(x, emb.config.n_freqs).double().numpy(), gi[:, None],
                                masked[i].double().numpy()[:, None], np.full((len(x), 1), np.log(rms))], 1)  # fmt: skip
        with torch.no_grad():
            h = torch.cat([emb.cls[0], emb.tokens(torch.as_tensor(feats, dtype=torch.float32))])[None]
            rows.append(emb.bottleneck(emb.norm(emb.encode_cls_reference(h)))[0])
    with torch.no_grad():
        got = emb.encode(x, true, masked)
    torch.testing.assert_close(got, torch.stack(rows), rtol=1e-4, atol=1e-5)


def test_model_input_scale_never_sees_the_masked_gradients(tiny_zoo):
    """The scale the encoder is told comes from visible samples only: changing the hidden ones changes nothing."""
    torch.manual_seed(0)
    emb = Embedder(ClozeConfig(input_scale="model", **SMALL)).eval()
    x, true, masked = _cloze_inputs(tiny_zoo)
    other = torch.where(masked, true * 100 + 7, true)
    with torch.no_grad():
        assert torch.equal(emb.encode(x, true, masked), emb.encode(x, other, masked))


def test_model_input_scale_trains_and_round_trips_through_the_store(tiny_zoo, tmp_path):
    emb = train_embedder(tiny_zoo, ClozeConfig(steps=20, input_scale="model", loss_scale="model", **SMALL))
    assert np.isfinite(emb.loss_curve_).all() and np.isfinite(emb.cloze_r2_)
    z = embed(emb, tiny_zoo)
    back = Embedder.from_state(*emb.to_state())
    np.testing.assert_array_equal(embed(back, tiny_zoo), z)
