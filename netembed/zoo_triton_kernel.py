"""The Triton kernel behind zoo_triton.TritonStep: one program per model runs a whole training step.

Imported by zoo_triton.load_kernel alone, which sets Triton's mode first (compiled for a GPU, or its
interpreter on the CPU). See zoo_triton.py for the maths.
"""

import triton
import triton.language as tl


@triton.jit
def activate(z, ACT: tl.constexpr, SLOPE: tl.constexpr):
    if ACT == 0:
        a = tl.maximum(z, 0.0)
    elif ACT == 1:
        a = tl.where(z > 0, z, z * SLOPE)
    elif ACT == 2:  # tanh from one exp of -2|z| (no overflow); within 2e-7 of torch's
        t = tl.exp(-2.0 * tl.abs(z))
        r = (1.0 - t) / (1.0 + t)
        a = tl.where(z < 0, -r, r)
    elif ACT == 3:
        a = tl.sin(z)
    else:  # exact gelu: z Phi(z)
        a = 0.5 * z * (1.0 + tl.erf(z * 0.7071067811865476))
    return a


@triton.jit
def derivative(z, a, ACT: tl.constexpr, SLOPE: tl.constexpr):
    """act'(z), as autograd takes it: relu from its output (a > 0), leaky relu from its input."""
    if ACT == 0:
        d = tl.where(a > 0, 1.0, 0.0)
    elif ACT == 1:
        d = tl.where(z > 0, 1.0, SLOPE)
    elif ACT == 2:
        d = 1.0 - a * a
    elif ACT == 3:
        d = tl.cos(z)
    else:  # Phi(z) + z phi(z)
        d = 0.5 * (1.0 + tl.erf(z * 0.7071067811865476)) + z * tl.exp(-0.5 * z * z) * 0.3989422804014327
    return d


@triton.jit
def adam(p_ptr, m_ptr, v_ptr, offsets, mask, p, g, step_size, bias_correction2_sqrt,
         BETA1: tl.constexpr, BETA2: tl.constexpr, EPS: tl.constexpr):  # fmt: skip
    """torch's Adam (no weight decay, no amsgrad) on one block of parameters p with gradient g."""
    m = tl.load(m_ptr + offsets, mask=mask, other=0.0)
    v = tl.load(v_ptr + offsets, mask=mask, other=0.0)
    m = BETA1 * m + (1.0 - BETA1) * g
    v = BETA2 * v + (1.0 - BETA2) * g * g
    p = p - step_size * m / (tl.sqrt(v) / bias_correction2_sqrt + EPS)
    tl.store(m_ptr + offsets, m, mask=mask)
    tl.store(v_ptr + offsets, v, mask=mask)
    tl.store(p_ptr + offsets, p, mask=mask)


@triton.jit
def zoo_step(
    x_ptr, y_ptr, loss_ptr,
    w0_ptr, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr,
    mw0_ptr, mb0_ptr, mw1_ptr, mb1_ptr, mw2_ptr, mb2_ptr,
    vw0_ptr, vb0_ptr, vw1_ptr, vb1_ptr, vw2_ptr, vb2_ptr,
    step_size, bias_correction2_sqrt, B: tl.constexpr, W: tl.constexpr,
    BETA1: tl.constexpr, BETA2: tl.constexpr, EPS: tl.constexpr,
    WP: tl.constexpr, BB: tl.constexpr, ACT: tl.constexpr, SLOPE: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    model = tl.program_id(0).to(tl.int64)
    units = tl.arange(0, WP)  # (WP,) hidden units, zero-padded past W
    unit_mask = units < W
    square = model * W * W + units[:, None] * W + units[None, :]  # (WP, WP) offsets into w1 (n, W, W)
    square_mask = unit_mask[:, None] & unit_mask[None, :]
    row = model * W + units  # offsets into the (n, 1, W) and (n, W, 1) tensors
    w0 = tl.load(w0_ptr + row, mask=unit_mask, other=0.0)  # (WP,)
    b0 = tl.load(b0_ptr + row, mask=unit_mask, other=0.0)
    w1 = tl.load(w1_ptr + square, mask=square_mask, other=0.0)  # (WP, WP) fan_in x fan_out
    b1 = tl.load(b1_ptr + row, mask=unit_mask, other=0.0)
    w2 = tl.load(w2_ptr + row, mask=unit_mask, other=0.0)  # (WP,)
    b2 = tl.load(b2_ptr + model)  # scalar
    g_w0 = tl.zeros((WP,), tl.float32)
    g_b0 = tl.zeros((WP,), tl.float32)
    g_w1 = tl.zeros((WP, WP), tl.float32)
    g_b1 = tl.zeros((WP,), tl.float32)
    g_w2 = tl.zeros((WP,), tl.float32)
    g_b2 = 0.0
    loss = 0.0
    for start in range(0, B, BB):
        samples = start + tl.arange(0, BB)  # (BB,)
        sample_mask = samples < B
        x = tl.load(x_ptr + samples, mask=sample_mask, other=0.0)
        y = tl.load(y_ptr + model * B + samples, mask=sample_mask, other=0.0)
        z1 = x[:, None] * w0[None, :] + b0[None, :]  # (BB, WP)
        a1 = activate(z1, ACT, SLOPE)
        z2 = tl.dot(a1, w1, input_precision=PRECISION) + b1[None, :]  # (BB, WP)
        a2 = activate(z2, ACT, SLOPE)
        out = tl.sum(a2 * w2[None, :], axis=1) + b2  # (BB,)
        err = tl.where(sample_mask, out - y, 0.0)
        loss += tl.sum(err * err, axis=0)
        g = err * (2.0 / B)  # dL/dout, L the sum over models of each model's mean square
        g_w2 += tl.sum(a2 * g[:, None], axis=0)
        g_b2 += tl.sum(g, axis=0)
        d2 = g[:, None] * w2[None, :] * derivative(z2, a2, ACT, SLOPE)  # (BB, WP) dL/dz2
        g_w1 += tl.dot(tl.trans(a1), d2, input_precision=PRECISION)  # (WP, WP)
        g_b1 += tl.sum(d2, axis=0)
        d1 = tl.dot(d2, tl.trans(w1), input_precision=PRECISION) * derivative(z1, a1, ACT, SLOPE)
        g_w0 += tl.sum(x[:, None] * d1, axis=0)
        g_b0 += tl.sum(d1, axis=0)
    tl.store(loss_ptr + model, loss / B)
    adam(w0_ptr, mw0_ptr, vw0_ptr, row, unit_mask, w0, g_w0, step_size, bias_correction2_sqrt, BETA1, BETA2, EPS)
    adam(b0_ptr, mb0_ptr, vb0_ptr, row, unit_mask, b0, g_b0, step_size, bias_correction2_sqrt, BETA1, BETA2, EPS)
    adam(w1_ptr, mw1_ptr, vw1_ptr, square, square_mask, w1, g_w1, step_size, bias_correction2_sqrt,
         BETA1, BETA2, EPS)  # fmt: skip
    adam(b1_ptr, mb1_ptr, vb1_ptr, row, unit_mask, b1, g_b1, step_size, bias_correction2_sqrt, BETA1, BETA2, EPS)
    adam(w2_ptr, mw2_ptr, vw2_ptr, row, unit_mask, w2, g_w2, step_size, bias_correction2_sqrt, BETA1, BETA2, EPS)
    adam(b2_ptr, mb2_ptr, vb2_ptr, model, True, b2, g_b2, step_size, bias_correction2_sqrt, BETA1, BETA2, EPS)
