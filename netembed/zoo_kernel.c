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
 */
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
#define S 16 /* samples per block */

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
/* rows per register block: R x NV accumulators stay in half the vector registers */
#define R_FIT ((VREGS / 2) / NV > 0 ? (VREGS / 2) / NV : 1)
#define R (R_FIT < S ? R_FIT : S)

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

/* For `rows` rows: out = act(a @ m + b) (ACT), or out = gate(h) * (a @ m) (GATE); a, h, out (rows, W), m (W, W). */
static inline void rows_times(const float *a, const float *m, const float *b, const float *h, enum epilogue ep,
                              float *out, int rows) {
    for (int r = 0; r < rows; r += R) {
        int nq = rows - r < R ? rows - r : R;
        vec acc[R][NV];
        for (int q = 0; q < R; q++)
            for (int v = 0; v < NV; v++) acc[q][v] = b ? ((const vec *)b)[v] : (vec){0};
        if (nq == R) { /* the full block, with a constant trip count the compiler unrolls */
            for (int k = 0; k < W; k++) {
                const vec *mk = (const vec *)(m + k * W);
                for (int q = 0; q < R; q++) {
                    float aq = a[(r + q) * W + k];
                    for (int v = 0; v < NV; v++) acc[q][v] += aq * mk[v];
                }
            }
        } else {
            for (int k = 0; k < W; k++) {
                const vec *mk = (const vec *)(m + k * W);
                for (int q = 0; q < nq; q++) {
                    float aq = a[(r + q) * W + k];
                    for (int v = 0; v < NV; v++) acc[q][v] += aq * mk[v];
                }
            }
        }
        for (int q = 0; q < nq; q++)
            for (int v = 0; v < NV; v++)
                ((vec *)(out + (r + q) * W))[v] =
                    ep == ACT ? act_v(acc[q][v]) : gate_v(((const vec *)(h + (r + q) * W))[v], acc[q][v]);
    }
}

/* g += sum_s c[s] * d[s] over rows s of d (rows, W); c (rows,), or NULL for all ones (a bias gradient). */
static inline void add_rows(const float *c, const float *d, float *g, int rows) {
    vec acc[NV];
    for (int v = 0; v < NV; v++) acc[v] = ((vec *)g)[v];
    for (int s = 0; s < rows; s++)
        for (int v = 0; v < NV; v++) acc[v] += (c ? c[s] : 1.0f) * ((const vec *)(d + s * W))[v];
    for (int v = 0; v < NV; v++) ((vec *)g)[v] = acc[v];
}

/* g[k] += sum_s a[s, k] * d[s] for every k: the weight gradient a^T d, a and d (rows, W). */
static void add_outer(const float *a, const float *d, float *g, int rows) {
    for (int k0 = 0; k0 < W; k0 += R) {
        int nk = W - k0 < R ? W - k0 : R;
        vec acc[R][NV];
        for (int q = 0; q < nk; q++)
            for (int v = 0; v < NV; v++) acc[q][v] = ((vec *)(g + (k0 + q) * W))[v];
        for (int s = 0; s < rows; s++) {
            const vec *ds = (const vec *)(d + s * W);
            for (int q = 0; q < nk; q++) {
                float ak = a[s * W + k0 + q];
                for (int v = 0; v < NV; v++) acc[q][v] += ak * ds[v];
            }
        }
        for (int q = 0; q < nk; q++)
            for (int v = 0; v < NV; v++) ((vec *)(g + (k0 + q) * W))[v] = acc[q][v];
    }
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

static void model_step(int i, int batch, int depth, const float *x, const float *t, float **p, float **m, float **v,
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
    float sq = 0.0f;
    for (int s0 = 0; s0 < batch; s0 += S) {
        int ns = batch - s0 < S ? batch - s0 : S;
        const float *xs = x + s0;
        /* forward: h[0] = act(x w0 + b0), h[l] = act(h[l-1] w_l + b_l) */
        for (int s = 0; s < ns; s++)
            for (int j = 0; j < W; j++) h[s * W + j] = act(xs[s] * w[0][j] + b[0][j]);
        for (int l = 1; l < depth; l++)
            rows_times(h + (size_t)(l - 1) * S * W, w[l], b[l], NULL, ACT, h + (size_t)l * S * W, ns);
        /* output, loss, and the gradient flowing into the last hidden layer */
        const float *top = h + (size_t)(depth - 1) * S * W;
        float gys[S];
        for (int s = 0; s < ns; s++) {
            float y = b[depth][0] + dot(top + s * W, w[depth]);
            float r = y - ti[s0 + s];
            sq += r * r;
            gys[s] = r * (2.0f / batch); /* d mean(r^2) / dy */
            gb[depth][0] += gys[s];
            for (int j = 0; j < W; j++) d[s * W + j] = gate(top[s * W + j]) * (gys[s] * w[depth][j]);
        }
        add_rows(gys, top, gw[depth], ns);
        /* backward through the hidden layers: grad w_l += h[l-1]^T d, d <- gate * (d w_l^T) */
        for (int l = depth - 1; l >= 1; l--) {
            const float *hp = h + (size_t)(l - 1) * S * W;
            add_outer(hp, d, gw[l], ns);
            add_rows(NULL, d, gb[l], ns);
            rows_times(d, wt + (size_t)(l - 1) * W * W, NULL, hp, GATE, dn, ns);
            float *swap = d;
            d = dn;
            dn = swap;
        }
        add_rows(xs, d, gw[0], ns);
        add_rows(NULL, d, gb[0], ns);
    }
    loss[i] = sq / batch;
    for (int l = 0; l < nl; l++) {
        size_t ow = (size_t)i * w_size(l, depth), ob = (size_t)i * b_size(l, depth);
        adam(w[l], m[2 * l] + ow, v[2 * l] + ow, gw[l], w_size(l, depth), beta1, beta2, eps, step_size, bc2_sqrt);
        adam(b[l], m[2 * l + 1] + ob, v[2 * l + 1] + ob, gb[l], b_size(l, depth), beta1, beta2, eps, step_size,
             bc2_sqrt);
    }
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
    if (!work) return -1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n_models; i++) {
#ifdef _OPENMP
        float *mine = work + (size_t)omp_get_thread_num() * n_work;
#else
        float *mine = work;
#endif
        model_step(i, batch, depth, x, t, p, m, v, loss, beta1, beta2, eps, step_size, bc2_sqrt, mine);
    }
    free(work);
    return 0;
}
