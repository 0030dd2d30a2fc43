"""The zoo's fused torch step: forward, a hand-derived backward and Adam, with no autograd graph.

`FusedStep` computes what zoo.AutogradStep computes (the same batched MLPs, the same mean-square
loss, torch's Adam with the same cosine schedule), but writes every tensor into a buffer
allocated once, so a step is a fixed list of kernels on fixed memory. n models, batch B, width W:

    forward   h_0 = x w_0 + b_0,  a_j = act(h_j),  h_{j+1} = a_j w_{j+1} + b_{j+1},  out = a_last w_out + b_out
    loss      e = out - y (n, B),  loss = mean_B e^2 (n,),  dL/dout = 2 e / B
    backward  per layer: gw = a_in^T g, gb = sum_B g, and g_in = (g w^T) * act'(h_in), down to layer 0
    Adam      torch._fused_adam_ over every weight and bias, the learning rate read from a tensor

Activations keep what their derivative needs and no more: relu, leaky_relu and tanh are applied
in place and differentiated from their outputs (as autograd does); sine keeps cos h beside sin h;
gelu keeps its pre-activation. On the CPU tanh is computed as 2 sigmoid(2h) - 1 (see activate). The same step runs on any device; on CUDA it is captured once in a
CUDA graph (`capture_cuda_graph`), so a step is one graph launch plus the copies of its inputs into
static buffers, not the dozens of small launches (and allocations) of the autograd step.
`compile=True` also passes the forward and backward through torch.compile (compile_gradients).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .config import ZooConfig

aten = torch.ops.aten
LEAKY_SLOPE = 0.01  # torch.nn.functional.leaky_relu's default, as zoo.activation_fn uses
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as AutogradStep uses
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sine", "gelu")
WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuBLAS handles, workspaces), then undone


class HiddenLayer:
    """One hidden layer's buffers, each (n, B, W): after forward `h` holds the activation; `saved` is what
    the derivative reads (h itself for relu / leaky_relu / tanh, cos of the pre-activation for sine, the
    pre-activation for gelu)."""

    def __init__(self, activation: str, shape: tuple[int, int, int], device):
        self.activation = activation
        self.h = torch.empty(shape, device=device)
        self.saved = torch.empty(shape, device=device) if activation in ("sine", "gelu") else self.h

    def activate(self) -> torch.Tensor:
        """h (the pre-activation) becomes the activation, in place; returns it."""
        h, act = self.h, self.activation
        if act == "relu":
            return h.relu_()
        if act == "leaky_relu":
            return torch.nn.functional.leaky_relu_(h, LEAKY_SLOPE)
        if act == "tanh":
            if h.device.type == "cpu":  # torch's CPU tanh is ~10x slower than its sigmoid (1 thread, AVX-512):
                # tanh h = 2 sigmoid(2h) - 1, within 1.8e-7 of it (torch's own: 3e-8 of the exact value)
                return torch.sigmoid(h.mul_(2), out=h).mul_(2).sub_(1)
            return h.tanh_()
        if act == "sine":
            torch.cos(h, out=self.saved)  # the derivative, taken before h becomes sin h
            return h.sin_()
        self.saved.copy_(h)  # gelu: its derivative needs the pre-activation, and torch has no in-place gelu
        return aten.gelu.out(self.saved, approximate="none", out=h)

    def backprop(self, g: torch.Tensor) -> None:
        """g (n, B, W): the gradient w.r.t. the activation becomes the one w.r.t. the pre-activation, in place."""
        act = self.activation
        if act == "relu":  # autograd's relu backward: g where the output > 0
            aten.threshold_backward.grad_input(g, self.h, 0, grad_input=g)
        elif act == "leaky_relu":  # the output's sign is the input's (slope > 0)
            aten.leaky_relu_backward.grad_input(g, self.h, LEAKY_SLOPE, True, grad_input=g)
        elif act == "tanh":  # g * (1 - tanh^2)
            aten.tanh_backward.grad_input(g, self.h, grad_input=g)
        elif act == "sine":
            g.mul_(self.saved)
        else:
            aten.gelu_backward.grad_input(g, self.saved, approximate="none", grad_input=g)


class FusedStep:
    """The zoo's training step with preallocated buffers and a hand-derived backward; any device, any
    activation, depth, width and input dimension. Updates `layers` [(w (n, fan_in, fan_out), b (n, 1,
    fan_out))] in place, as the other engines do."""

    def __init__(
        self,
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        config: ZooConfig,
        lr_at: Callable[[int, ZooConfig], float],
        compile: bool = False,
    ):
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"no fused step for activation {config.activation!r}")
        w0 = layers[0][0]
        n, d = w0.shape[:2]
        B, device = config.batch_size, w0.device
        self.config, self.lr_at, self.n, self.d, self.B = config, lr_at, n, d, B
        # detached views of the caller's tensors: updated in place, and out= ops refuse tensors that need grad
        self.layers = [(w.detach(), b.detach()) for w, b in layers]
        self.params = [p for layer in self.layers for p in layer]
        widths = [w.shape[2] for w, _ in layers[:-1]]
        self.hidden = [HiddenLayer(config.activation, (n, B, width), device) for width in widths]
        self.grads = [torch.empty_like(p) for p in self.params]
        self.g = [torch.empty(n, B, max(widths), device=device) for _ in range(2)]  # ping-pong: g_in = g w^T
        self.x = torch.zeros(B, d, device=device)  # static inputs (B, d), shared by all models
        self.y = torch.zeros(n, B, device=device)  # static targets
        self.out = torch.empty(n, B, 1, device=device)
        self.err, self.sq = torch.empty(n, B, device=device), torch.empty(n, B, device=device)
        self.losses = torch.empty(n, device=device)
        # Adam's state as torch's fused Adam keeps it: moments like the parameters, float32 step counts
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), device=device) for _ in self.params]
        # the CPU kernel reads the rate as a double (torch.optim.Adam's Python float), the CUDA kernel as a float
        self.lr = torch.zeros((), dtype=torch.float64 if device.type == "cpu" else torch.float32, device=device)
        self.graph = None
        if compile:
            self.gradients = compile_gradients(self.gradients)
        if device.type == "cuda":
            state = self.params + self.exp_avgs + self.exp_avg_sqs + self.steps
            self.graph = capture_cuda_graph(self.run, state)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """Adam step number `step` (from 1) on inputs x (B,) or (B, d), targets y (n, B) -> losses (n,) before it."""
        self.x.copy_(x.reshape(self.B, self.d))
        self.y.copy_(y)
        self.lr.fill_(self.lr_at(step - 1, self.config))
        if self.graph is not None:
            self.graph.replay()
        else:
            self.run()
        return self.losses.clone()  # the buffer is overwritten by the next step

    def run(self) -> None:
        """One step on the static buffers: forward, loss, backward, Adam."""
        self.gradients()
        self.adam()

    def gradients(self) -> None:
        """Forward, loss and backward on the static buffers: self.losses and self.grads."""
        n, B = self.n, self.B
        (w0, b0), *rest = self.layers
        first = self.hidden[0]
        if self.d == 1:  # a broadcast, as mlp_forward does: x (1, B, 1) * w0 (n, 1, W) + b0
            torch.addcmul(b0, self.x.view(1, B, 1), w0, out=first.h)
        else:
            torch.baddbmm(b0, self.x.expand(n, B, self.d), w0, out=first.h)
        a = first.activate()
        for (w, b), layer in zip(rest[:-1], self.hidden[1:]):
            torch.baddbmm(b, a, w, out=layer.h)
            a = layer.activate()
        w_out, b_out = rest[-1]
        torch.baddbmm(b_out, a, w_out, out=self.out)
        torch.sub(self.out.view(n, B), self.y, out=self.err)
        torch.pow(self.err, 2, out=self.sq)
        torch.mean(self.sq, 1, out=self.losses)
        g_out = self.err.mul_(2.0 / B).view(n, B, 1)  # dL/dout, L the sum of the models' mean squares
        self.backward(g_out)

    def adam(self) -> None:
        """torch's fused Adam over every weight and bias, at the learning rate in self.lr."""
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(
            self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, [], self.steps,
            lr=self.lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], weight_decay=0.0, eps=ADAM_EPS,
            amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
        )  # fmt: skip

    def backward(self, g_out: torch.Tensor) -> None:
        """g_out (n, B, 1) -> every layer's weight and bias gradient, into self.grads."""
        n, B = self.n, self.B
        layers, hidden, grads = self.layers, self.hidden, self.grads
        last = len(layers) - 1
        a = hidden[-1].h  # (n, B, W) the last hidden activation
        torch.bmm(a.transpose(1, 2), g_out, out=grads[2 * last])  # (n, W, 1)
        torch.sum(g_out, 1, keepdim=True, out=grads[2 * last + 1])  # (n, 1, 1)
        g = self.g[0][..., : a.shape[2]]
        torch.mul(g_out, layers[last][0].transpose(1, 2), out=g)  # outer product (n, B, 1) x (n, 1, W)
        hidden[-1].backprop(g)
        for j in range(last - 1, 0, -1):  # hidden-to-hidden layer j: input hidden[j - 1], output grad g
            a_in = hidden[j - 1].h
            torch.bmm(a_in.transpose(1, 2), g, out=grads[2 * j])
            torch.sum(g, 1, keepdim=True, out=grads[2 * j + 1])
            g_in = self.g[(last - j) % 2][..., : a_in.shape[2]]
            torch.bmm(g, layers[j][0].transpose(1, 2), out=g_in)
            hidden[j - 1].backprop(g_in)
            g = g_in
        # layer 0: x (B, d) shared; gw0 = x^T g (n, d, W) as one batched matmul over a stride-0 batch
        torch.bmm(self.x.t().expand(n, self.d, B), g, out=grads[0])
        torch.sum(g, 1, keepdim=True, out=grads[1])


def compile_gradients(gradients: Callable[[], None]) -> Callable[[], None]:
    """The forward and backward through torch.compile (inductor fuses the elementwise work around the matmuls).
    Adam stays outside: _fused_adam_ with a tensor learning rate has no compile support in torch 2.13. Not used
    by make_step: compiling takes 30-80 s (2-core CPU) for a step measured 1.7x faster there (sine, 100 models);
    benchmarks/gpu_step.py measures it as the engine "fused+compile"."""
    return torch.compile(gradients, dynamic=False)


def capture_cuda_graph(run: Callable[[], None], state: list[torch.Tensor]) -> torch.cuda.CUDAGraph:
    """`run` (a step on static buffers) captured as one CUDA graph. The warm-up before capture (which sets up
    cuBLAS and the allocator, as capture requires) trains for real, so `state` (weights, Adam's moments and
    counts) is copied before it and restored after: the first replay is the zoo's first step."""
    saved = [t.clone() for t in state]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_STEPS):
            run()
    torch.cuda.current_stream().wait_stream(side)
    for t, v in zip(state, saved):
        t.copy_(v)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    return graph
