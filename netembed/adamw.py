"""AdamW exactly as torch.optim.AdamW(fused=True) computes it, without torch.optim's first-use cost.

torch.optim's Optimizer.__init__ is wrapped to keep torch.compile out of it, and that wrapper
imports torch._dynamo (about 800 modules, about 1 s of CPU time) the first time any optimizer
is built; nothing else in the default pipeline needs it (the zoo's Adam is in its own kernel).
This calls the same fused kernel with the same state, so its steps are bit-identical to
torch's (test_adamw.py checks that). One learning rate for every parameter, no amsgrad.
"""

from __future__ import annotations

import torch


class FusedAdamW:
    """AdamW over `params`; set `lr` between steps to schedule it."""

    def __init__(self, params, lr: float, weight_decay: float = 1e-2, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = float(lr), float(weight_decay), betas, float(eps)
        # torch's fused state: moments like the parameter, the step count a float32 scalar on its device
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        groups: dict[tuple, list[int]] = {}  # the kernel takes tensors of one device and dtype
        for i, p in enumerate(self.params):
            if p.grad is not None:  # as torch does: a parameter without a gradient keeps its state
                groups.setdefault((p.device, p.dtype), []).append(i)
        for idx in groups.values():
            steps = [self.steps[i] for i in idx]
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(
                [self.params[i] for i in idx],
                [self.params[i].grad for i in idx],
                [self.exp_avgs[i] for i in idx],
                [self.exp_avg_sqs[i] for i in idx],
                [],  # max_exp_avg_sqs: amsgrad only
                steps,
                amsgrad=False,
                lr=self.lr,
                beta1=self.betas[0],
                beta2=self.betas[1],
                weight_decay=self.weight_decay,
                eps=self.eps,
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )
