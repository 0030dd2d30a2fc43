/* One fused training step (forward, hand-written backward, Adam) for a zoo of ReLU or
 * leaky-ReLU MLPs 1 -> W^depth -> 1, on the CPU, in float32.
 *
 * Why C: in torch every elementwise pass of the step walks a (models, batch, width) tensor
 * through memory, and those passes, not the matmuls, bound the vectorised trainer. Here one
 * model is trained at a time, a block of S samples at a time, so activations never leave
 * L1: the loss is a per-sample sum, so each block's forward and backward are independent.
 *
 * Layout matches netembed.zoo: layer l of model i has w (fan_in, fan_out) row-major and
 * b (fan_out,), at offset i * size in the stacked tensor. W (the width) is a compile-time
 * constant so the inner loops over a row vectorise fully. Each model is computed by one
 * thread in a fixed order, so results do not depend on the thread count, and a NaN in one
 * model never touches another.
 *
 * Speed: the three W x W matmuls per sample and hidden layer (forward, weight gradient,
 * input gradient) are register tiles sized from the machine's vector registers (see RB, CB),
 * so the same plain C runs near the FMA peak with 16 lanes (AVX-512) or 8 (AVX2, 16
 * registers). For ReLU the samples are taken in the order of x, and the tiles skip columns
 * of activations that are 0 in every row (SKIP_ZEROS). 1 -> 32 -> 32 -> 1, one Zen 5 core,
 * CPU time (model-steps/s): AVX2 37k -> 74k, AVX-512 87k -> 117k against the kernel before
 * the tiles (C harness, same models and data).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef W
#error "compile with -DW=<width>"
#endif
#ifdef LEAKY
#define SLOPE 0.01f /* torch's default negative slope */
#else
#define SLOPE 0.0f
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* A row of W floats is NV vectors of VL lanes (GCC vector extensions, so no intrinsics).
 * VL never exceeds the machine's vector width: a 16-lane vector without AVX-512 is split
 * by GCC, partly into scalar code (measured 40x slower on AVX2 with -mno-avx512f). */
#if defined(__AVX512F__)
#define VMAX 16
#define VREGS 32
#elif defined(__AVX__)
#define VMAX 8
#define VREGS 16
#elif defined(__ARM_NEON)
#define VMAX 4
#define VREGS 32
#else /* SSE2 (every x86-64) and the rest: 128-bit vectors, 16 registers */
#define VMAX 4
#define VREGS 16
#endif
#if W % 16 == 0 && VMAX >= 16
#define VL 16
#elif W % 8 == 0 && VMAX >= 8
#define VL 8
#elif W % 4 == 0
#define VL 4
#else
#define VL 1
#endif
#define NV (W / VL)
#if VL > 1
typedef float vec __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));
#else
typedef float vec;
#endif

/* Like torch, both propagate NaN (a NaN fails every comparison). */
#ifdef LEAKY
static inline float act(float z) { return z > 0.0f ? z : SLOPE * z; }
#else
static inline float act(float z) { return z <= 0.0f ? 0.0f : z; }
#endif
static inline float gate(float h) { return h > 0.0f ? 1.0f : SLOPE; }

/* The same on whole vectors (comparisons give lane masks), for the matmul epilogues. */
#if VL > 1
typedef int ivec __attribute__((vector_size(VL * sizeof(float))));
static inline vec blend(ivec mask, vec yes, vec no) { return (vec)(((ivec)yes & mask) | ((ivec)no & ~mask)); }
#ifdef LEAKY
static inline vec act_v(vec z) { return blend(z > 0.0f, z, SLOPE * z); }
#else
static inline vec act_v(vec z) { return blend(z <= 0.0f, (vec){0}, z); } /* NaN stays NaN, like torch */
#endif
static inline vec gate_v(vec h, vec g) { return blend(h > 0.0f, g, SLOPE * g); }
#else
static inline vec act_v(vec z) { return act(z); }
static inline vec gate_v(vec h, vec g) { return gate(h) * g; }
#endif
enum epilogue { ACT, GATE }; /* out = act(a m + b), or out = gate(h) * (a m) */

/* Register tiles. Every matmul of the step is a sum of rank-1 updates to a tile of RB rows x
 * CB vectors held in registers: acc[r][c] += a(r, k) * b_k[c], with b_k (a row of CB vectors)
 * loaded once per k and a(r, k) broadcast once per row. RB * CB accumulators, the CB vectors of
 * b_k and one broadcast fill the register file (AVX2, 16 registers of 8 lanes: 6 x 2; AVX-512,
 * 32 of 16: 12 x 2), and at least 8 accumulators hide the FMA latency. Measured on AVX2 (Zen 5):
 * 6 x 2 ran at ~80% of the FMA peak; 7 x 2, 4 x 2 and 3 x 4 at half that (7 x 2 leaves no
 * register for b_k, so gcc reloads it for every FMA and the loads, not the FMAs, set the pace).
 * Every tile has constant sizes, so it is fully unrolled with its accumulators in registers:
 * sample rows are padded to whole tiles (the padding rows are computed and never used), and
 * the one narrower tile at the right or bottom edge of a matrix has its own constant size.
 * RB, CB and S may be set with -D to experiment. */
#ifndef CB
#define CB (NV < 2 ? NV : 2)
#endif
#ifndef RB
#define RB_FIT ((VREGS - CB - 1) / CB)
#define RB (RB_FIT < 12 ? RB_FIT : 12)
#endif
#ifndef S
#define S (RB * ((48 + RB - 1) / RB)) /* samples per block: whole row tiles, about 48 */
#endif
#if S % RB != 0
#error "S must be a whole number of row tiles"
#endif
#define PADDED(rows) (((rows) + RB - 1) / RB * RB) /* rows rounded up to whole tiles, at most S */
#define ALWAYS static inline __attribute__((always_inline))

/* acc[r][c] += sum_k a[r * ar + k * ak] * b[k * NV + c] for r < rb, c < cb, and k = ks[0 .. n_k - 1]
 * (or k < n_k where ks is NULL). */
ALWAYS void tile_fma(int rb, int cb, int n_k, const int *ks, const float *a, int ar, int ak, const vec *b,
                     vec acc[RB][CB]) {
    for (int i = 0; i < n_k; i++) {
        int k = ks ? ks[i] : i;
        vec bk[CB];
#pragma GCC unroll 4
        for (int c = 0; c < cb; c++) bk[c] = b[(size_t)k * NV + c];
#pragma GCC unroll 16
        for (int r = 0; r < rb; r++) {
            float x = a[r * ar + k * ak];
#pragma GCC unroll 4
            for (int c = 0; c < cb; c++) acc[r][c] += x * bk[c];
        }
    }
}

/* Zero columns. With ReLU about half the activations are 0, and the gradients below a ReLU too, where
 * it is off. The kernel sorts the batch by x (zoo_step), so a unit is off for runs of neighbouring
 * samples, and a column k of a row tile is often 0 in every row: 49% of (6-row tile, unit) pairs of
 * h, 65% of the gradient's, measured on 100 trained 1->32->32->1 models. Such a k adds exactly
 * nothing (0 * m = 0 for a finite m), so the tile skips it: `skip` is set only when every weight of
 * the model is finite (0 * inf would be NaN in torch, and is kept here). Leaky ReLU has no zeros.
 * -DSKIP_ZEROS=0 or 1 overrides the choice below. */
#ifndef SKIP_ZEROS
#if defined(LEAKY) || W < 12 /* at W = 8 finding the zero columns cost more than skipping them saved (6-10%) */
#define SKIP_ZEROS 0
#else
#define SKIP_ZEROS 1
#endif
#endif
/* ks receives the k < W (in order) where some row r < rb of a (stride W) is not 0 (NaN is not 0); returns their number. */
ALWAYS int nonzero_columns(int rb, const float *a, int skip, int *ks) {
    int any[W], n = 0;
    for (int k = 0; k < W; k++) any[k] = !(SKIP_ZEROS && skip);
    for (int r = 0; r < rb; r++)
        for (int k = 0; k < W; k++) any[k] |= a[r * W + k] != 0.0f;
    for (int k = 0; k < W; k++) {
        ks[n] = k;
        n += any[k];
    }
    return n;
}

/* rb rows of out = act(a @ m + b) (ACT), or of out = gate(h) * (a @ m) and then gsum += the first `valid` rows
 * of out (GATE: the bias gradient); a, h, out (stride W) from the tile's first row; m, b, h, out, gsum from its
 * first vector; cb vectors; the sum over the n_k columns ks of a (nonzero_columns). */
ALWAYS void times_tile(int rb, int cb, int n_k, const int *ks, const float *a, const vec *m, const vec *b,
                       const vec *h, enum epilogue ep, vec *out, vec *gsum, int valid) {
    vec acc[RB][CB];
    for (int r = 0; r < rb; r++)
        for (int c = 0; c < cb; c++) acc[r][c] = ep == ACT ? b[c] : (vec){0};
    tile_fma(rb, cb, n_k, ks, a, W, 1, m, acc);
    for (int r = 0; r < rb; r++)
        for (int c = 0; c < cb; c++)
            out[r * NV + c] = acc[r][c] = ep == ACT ? act_v(acc[r][c]) : gate_v(h[r * NV + c], acc[r][c]);
    if (ep == GATE)
        for (int c = 0; c < cb; c++) {
            vec sum = gsum[c];
            for (int r = 0; r < rb; r++)
                if (r < valid) sum += acc[r][c];
            gsum[c] = sum;
        }
}

/* rb rows (from the tile's first, a row of a, h and out) of rows_times, every column block. */
ALWAYS void times_rows(int rb, const float *a, const float *m, const float *b, const float *h, enum epilogue ep,
                       float *out, float *gsum, int valid, int skip) {
    int ks[W];
    int n_k = nonzero_columns(rb, a, skip, ks);
#define TIMES_TILE(cb, c0)                                                                                      \
    times_tile(rb, cb, n_k, ks, a, (const vec *)m + (c0), b ? (const vec *)b + (c0) : NULL,                     \
               h ? (const vec *)h + (c0) : NULL, ep, (vec *)out + (c0), gsum ? (vec *)gsum + (c0) : NULL, valid)
    for (int c0 = 0; c0 + CB <= NV; c0 += CB) TIMES_TILE(CB, c0);
    if (NV % CB) TIMES_TILE(NV % CB, NV - NV % CB);
#undef TIMES_TILE
}

/* out = act(a @ m + b) (ACT), or out = gate(h) * (a @ m) and gsum += the sum of out's first `rows` rows (GATE);
 * a, h, out (PADDED(rows), W), m (W, W), b and gsum (W,). Tiles of RB rows, and a last one of RB_HALF rows where
 * no more than RB / 2 are left (batch 256 = 5 x 48 + 16: 12 + 6 rows, not 12 + 12). The padding rows of out
 * are computed from those of a and h, and never used. skip: zero columns of a may be skipped (finite m). */
#define RB_HALF ((RB + 1) / 2)
ALWAYS void rows_times(const float *a, const float *m, const float *b, const float *h, enum epilogue ep, float *out,
                       float *gsum, int rows, int skip) {
    int r0 = 0;
    for (; rows - r0 > RB / 2; r0 += RB)
        times_rows(RB, a + (size_t)r0 * W, m, b, h ? h + (size_t)r0 * W : NULL, ep, out + (size_t)r0 * W, gsum,
                   rows - r0, skip);
    if (r0 < rows)
        times_rows(RB_HALF, a + (size_t)r0 * W, m, b, h ? h + (size_t)r0 * W : NULL, ep, out + (size_t)r0 * W, gsum,
                   rows - r0, skip);
}

/* rb rows of g += a^T d, from row k0 of g (column k0 of a); cb vectors of d and g from vector c0; a, d (rows, W). */
ALWAYS void outer_tile(int rb, int cb, int k0, int c0, const float *a, const float *d, float *g, int rows) {
    vec acc[RB][CB];
    vec *g_t = (vec *)(g + (size_t)k0 * W) + c0;
    for (int r = 0; r < rb; r++)
        for (int c = 0; c < cb; c++) acc[r][c] = g_t[r * NV + c];
    tile_fma(rb, cb, rows, NULL, a + k0, 1, W, (const vec *)d + c0, acc);
    for (int r = 0; r < rb; r++)
        for (int c = 0; c < cb; c++) g_t[r * NV + c] = acc[r][c];
}

/* The columns c0 .. c0 + cb - 1 (vectors) of add_outer: whole tiles of RB rows of g, then the W % RB left. */
ALWAYS void outer_cols(int cb, int c0, const float *a, const float *d, float *g, int rows) {
    for (int k0 = 0; k0 + RB <= W; k0 += RB) outer_tile(RB, cb, k0, c0, a, d, g, rows);
    if (W % RB) outer_tile(W % RB, cb, W - W % RB, c0, a, d, g, rows);
}

/* g[k] += sum_s a[s, k] * d[s] for every k: the weight gradient a^T d, a and d (rows, W), g (W, W). */
ALWAYS void add_outer(const float *a, const float *d, float *g, int rows) {
    for (int c0 = 0; c0 + CB <= NV; c0 += CB) outer_cols(CB, c0, a, d, g, rows);
    if (NV % CB) outer_cols(NV % CB, NV - NV % CB, a, d, g, rows);
}
/* g += sum_s c[s] * d[s] over rows s of d (rows, W), c (rows,). */
static inline void add_rows(const float *c, const float *d, float *g, int rows) {
    vec acc[NV];
    for (int v = 0; v < NV; v++) acc[v] = ((vec *)g)[v];
    for (int s = 0; s < rows; s++)
        for (int v = 0; v < NV; v++) acc[v] += c[s] * ((const vec *)(d + s * W))[v];
    for (int v = 0; v < NV; v++) ((vec *)g)[v] = acc[v];
}

/* a . b for rows of W: lane-wise products, then halves added as a tree (a fixed order). */
typedef float v2 __attribute__((vector_size(8), aligned(4)));
typedef float v4 __attribute__((vector_size(16), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));
#define HALVES(big, small, x) ({ small lo_, hi_; memcpy(&lo_, &(x), sizeof lo_); \
                                 memcpy(&hi_, (const char *)&(x) + sizeof lo_, sizeof hi_); lo_ + hi_; })
static inline float dot(const float *a, const float *b) {
    vec acc = ((const vec *)a)[0] * ((const vec *)b)[0];
    for (int v = 1; v < NV; v++) acc += ((const vec *)a)[v] * ((const vec *)b)[v];
#if VL == 1
    return acc;
#else
#if VL == 16
    v8 a8 = HALVES(vec, v8, acc);
#elif VL == 8
    v8 a8 = acc;
#endif
#if VL >= 8
    v4 a4 = HALVES(v8, v4, a8);
#else
    v4 a4 = acc;
#endif
    v2 a2 = HALVES(v4, v2, a4);
    return a2[0] + a2[1];
#endif
}

/* The output layer y = top . w + b for `rows` samples, against targets t; adds the squared errors to *sq, and
 * the gradients (of the batch's mean squared error) to gw (W,), gb (1,) and g_top (W, the top hidden layer's bias);
 * d (PADDED(rows), W) receives the gradient wrt the top hidden layer's pre-activations, 0 in the padding rows. */
static inline void output_layer(const float *top, const float *w, float b, const float *t, const int *order, int rows, int batch,
                                float *d, float *gw, float *gb, float *g_top, float *sq) {
    vec acc_w[NV], acc_top[NV];
    for (int v = 0; v < NV; v++) acc_w[v] = ((vec *)gw)[v], acc_top[v] = ((vec *)g_top)[v];
    for (int s = 0; s < rows; s++) {
        const vec *hs = (const vec *)(top + s * W);
        float r = b + dot(top + s * W, w) - t[order[s]];
        *sq += r * r;
        float gy = r * (2.0f / batch); /* d mean(r^2) / dy */
        *gb += gy;
        for (int v = 0; v < NV; v++) {
            vec ds = gate_v(hs[v], gy * ((const vec *)w)[v]);
            ((vec *)(d + s * W))[v] = ds;
            acc_w[v] += gy * hs[v];
            acc_top[v] += ds;
        }
    }
    for (int v = 0; v < NV; v++) ((vec *)gw)[v] = acc_w[v], ((vec *)g_top)[v] = acc_top[v];
    memset(d + (size_t)rows * W, 0, (size_t)(PADDED(rows) - rows) * W * sizeof(float));
}

/* Per-model parameter sizes, layer by layer: w0 (W), b0 (W), [w (W*W), b (W)] * (depth-1), wL (W), bL (1). */
static size_t w_size(int l, int depth) { return (l == 0 || l == depth) ? W : (size_t)W * W; }
static size_t b_size(int l, int depth) { return l == depth ? 1 : W; }

static void adam(float *restrict p, float *restrict m, float *restrict v, const float *restrict g, size_t n, float beta1, float beta2, float eps,
                 float step_size, float bc2_sqrt) {
    /* torch.optim.Adam's single-tensor update, term for term. */
    for (size_t e = 0; e < n; e++) {
        m[e] += (1.0f - beta1) * (g[e] - m[e]);
        v[e] = v[e] * beta2 + (1.0f - beta2) * g[e] * g[e];
        float denom = sqrtf(v[e]) / bc2_sqrt + eps;
        p[e] -= step_size * (m[e] / denom);
    }
}

static void model_step(int i, int batch, int depth, const float *x, const int *order, const float *t, float **p, float **m, float **v,
                       float *loss, float beta1, float beta2, float eps, float step_size, float bc2_sqrt, float *work) {
    int nl = depth + 1; /* linear layers */
    float *w[nl], *b[nl], *gw[nl], *gb[nl];
    float *g = work;
    for (int l = 0; l < nl; l++) {
        w[l] = p[2 * l] + (size_t)i * w_size(l, depth);
        b[l] = p[2 * l + 1] + (size_t)i * b_size(l, depth);
        gw[l] = g;
        g += w_size(l, depth);
        gb[l] = g;
        g += b_size(l, depth);
    }
    size_t n_params = (size_t)(g - work);
    memset(work, 0, n_params * sizeof(float));
    float *wt = g;                      /* transposed hidden weights, (depth-1) x (W, W) */
    float *h = wt + (size_t)(depth - 1) * W * W; /* activations of the block, depth x (S, W) */
    float *d = h + (size_t)depth * S * W;        /* gradient wrt pre-activations, (S, W) */
    float *dn = d + S * W;                        /* the same for the layer below */
    for (int l = 1; l < depth; l++)
        for (int k = 0; k < W; k++)
            for (int j = 0; j < W; j++) wt[(size_t)(l - 1) * W * W + j * W + k] = w[l][k * W + j];
    const float *ti = t + (size_t)i * batch;
    int skip = 1; /* zero columns may be skipped: every hidden weight is finite (see SKIP_ZEROS) */
    for (int l = 1; l < depth; l++)
        for (int e = 0; e < W * W; e++) skip &= fabsf(w[l][e]) <= FLT_MAX;
    float sq = 0.0f;
    for (int s0 = 0; s0 < batch; s0 += S) {
        int ns = batch - s0 < S ? batch - s0 : S;
        const float *xs = x + s0;
        /* forward: h[0] = act(x w0 + b0), h[l] = act(h[l-1] w_l + b_l); the padding rows (PADDED(ns) - ns,
         * never used) get x = 0, so no row of the block holds another model's numbers */
        for (int s = 0; s < PADDED(ns); s++) { /* act_v, not act: gcc made leaky ReLU's scalar act a branch */
            float xv = s < ns ? xs[s] : 0.0f;
            for (int v = 0; v < NV; v++)
                ((vec *)(h + s * W))[v] = act_v(xv * ((const vec *)w[0])[v] + ((const vec *)b[0])[v]);
        }
        for (int l = 1; l < depth; l++)
            rows_times(h + (size_t)(l - 1) * S * W, w[l], b[l], NULL, ACT, h + (size_t)l * S * W, NULL, ns, skip);
        /* output, loss, and the gradient d flowing into the last hidden layer; each d is summed into its
         * bias gradient where it is made (here, and in the GATE epilogues below) */
        output_layer(h + (size_t)(depth - 1) * S * W, w[depth], b[depth][0], ti, order + s0, ns, batch, d, gw[depth],
                     gb[depth], gb[depth - 1], &sq);
        /* backward through the hidden layers: grad w_l += h[l-1]^T d, d <- gate * (d w_l^T) */
        for (int l = depth - 1; l >= 1; l--) {
            const float *hp = h + (size_t)(l - 1) * S * W;
            add_outer(hp, d, gw[l], ns);
            rows_times(d, wt + (size_t)(l - 1) * W * W, NULL, hp, GATE, dn, gb[l - 1], ns, skip);
            float *swap = d;
            d = dn;
            dn = swap;
        }
        add_rows(xs, d, gw[0], ns);
    }
    loss[i] = sq / batch;
    for (int l = 0; l < nl; l++) {
        size_t ow = (size_t)i * w_size(l, depth), ob = (size_t)i * b_size(l, depth);
        adam(w[l], m[2 * l] + ow, v[2 * l] + ow, gw[l], w_size(l, depth), beta1, beta2, eps, step_size, bc2_sqrt);
        adam(b[l], m[2 * l + 1] + ob, v[2 * l + 1] + ob, gb[l], b_size(l, depth), beta1, beta2, eps, step_size,
             bc2_sqrt);
    }
}

/* The build's vector lanes and tile (tests check that a flag such as -mno-avx512f took effect). */
int zoo_vector_lanes(void) { return VL; }
int zoo_tile_rows(void) { return RB; }

/* A sample's input and its place in the batch; by_x orders by x, NaN last, ties by place (a total order). */
struct sample {
    float x;
    int index;
};
static int by_x(const void *pa, const void *pb) {
    const struct sample *a = pa, *b = pb;
    if (isnan(a->x) != isnan(b->x)) return isnan(a->x) ? 1 : -1;
    if (a->x != b->x && !isnan(a->x)) return a->x < b->x ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* One step of every model. x (batch,) shared inputs; t (n_models, batch) targets; p, m, v:
 * 2 * (depth + 1) stacked tensors each (weights, biases; Adam's first and second moments);
 * loss (n_models,) receives each model's MSE before the update. Returns 0, or -1 if out of memory. */
int zoo_step(int n_models, int batch, int depth, const float *x, const float *t, float **p, float **m, float **v,
             float *loss, float beta1, float beta2, float eps, float step_size, float bc2_sqrt, int threads) {
    size_t n_work = 2 * (size_t)W + (size_t)(depth - 1) * (W * W + W) + W + 1 /* grads */
                    + (size_t)(depth - 1) * W * W + (size_t)depth * S * W + 2 * S * W;
    if (threads < 1) threads = 1;
    float *work = malloc((size_t)threads * n_work * sizeof(float));
    struct sample *sorted = malloc((size_t)batch * sizeof *sorted);
    int *order = malloc((size_t)batch * sizeof *order);
    float *xs = malloc((size_t)batch * sizeof *xs);
    if (!work || !sorted || !order || !xs) {
        free(work), free(sorted), free(order), free(xs);
        return -1;
    }
    /* the samples in the order of x (see SKIP_ZEROS); the loss is a sum over samples, so any order will do */
    for (int s = 0; s < batch; s++) sorted[s] = (struct sample){x[s], s};
    qsort(sorted, batch, sizeof *sorted, by_x);
    for (int s = 0; s < batch; s++) order[s] = sorted[s].index, xs[s] = sorted[s].x;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n_models; i++) {
#ifdef _OPENMP
        float *mine = work + (size_t)omp_get_thread_num() * n_work;
#else
        float *mine = work;
#endif
        model_step(i, batch, depth, xs, order, t, p, m, v, loss, beta1, beta2, eps, step_size, bc2_sqrt, mine);
    }
    free(work), free(sorted), free(order), free(xs);
    return 0;
}
