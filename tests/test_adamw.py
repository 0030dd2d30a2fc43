"""FusedAdamW against torch.optim.AdamW(fused=True): the same kernel and state, so bit-identical steps."""

import torch

from netembed.adamw import FusedAdamW


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.Linear(7, 3), torch.nn.LayerNorm(3))


def test_steps_are_bit_identical_to_torch_fused_adamw_with_a_changing_lr():
    ours, theirs = _model(0), _model(0)
    ours[3].weight.requires_grad_(False)  # a frozen parameter is skipped by both
    theirs[3].weight.requires_grad_(False)
    opt = FusedAdamW(ours.parameters(), lr=3e-3, weight_decay=1e-4)
    ref = torch.optim.AdamW([p for p in theirs.parameters() if p.requires_grad], lr=3e-3, weight_decay=1e-4,
                            fused=True)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    for step in range(25):
        x = torch.randn(11, 5, generator=g)
        lr = 3e-3 * (step + 1) / 25
        opt.lr = lr
        for group in ref.param_groups:
            group["lr"] = lr
        for model, o in ((ours, opt), (theirs, ref)):
            o.zero_grad()
            loss = model(x).pow(2).mean()
            if step % 7 == 3:  # some steps leave one parameter without a gradient: its state must not move
                loss = loss + 0 * model[0].bias.sum()
            loss.backward()
            if step % 7 == 5:
                model[2].bias.grad = None
            o.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b), f"step {step}: parameters differ"
    assert not torch.equal(ours[0].weight, _model(0)[0].weight)  # it did train
