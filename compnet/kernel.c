/* Fused forward and backward pass of a batch of small ReLU MLPs under the MSE loss (compnet/kernel.py).

   For trial t with layers (W_l, b_l), l = 0 … L-1, input x [n, N] (n = dims[0] coordinates) and target y_t [N]:
       h_0 = x,  z_l = W_l h_l + b_l,  h_{l+1} = relu(z_l) (l < L-1),  f = z_{L-1},
       loss_t = mean_n (f_n − y_n)²,
   and, when gradients are asked for, dloss_t/dW_l and dloss_t/db_l by backpropagation:
       δ_{L-1} = 2 (f − y) / N,  δ_{l-1} = [h_l > 0] ⊙ W_lᵀ δ_l,  dW_l = Σ_n δ_l h_lᵀ,  db_l = Σ_n δ_l.

   Why a kernel: the networks are 4 neurons wide, so torch spends a step on a few dozen memory-bound passes
   over [T, 4, N] activations. Here the points are walked in blocks of LANES held in one vector (two without
   AVX; GCC/Clang vector extensions), so every activation of a block stays in registers or L1 and each neuron
   costs a handful of vector instructions. Each trial is computed on its own, in a fixed order, so its numbers do not
   depend on the batch.

   Nor on the x86-64 machine: a block is 32 bytes (8 floats, 4 doubles) whatever SIMD the compiler targets
   (AVX2 runs it in one register, SSE2 in two, AVX-512 in half of one), every lane does the same IEEE
   operations in the same order, and lanes and blocks are summed in one fixed order. kernel.py compiles with
   -ffp-contract=off, since whether w*h + z becomes one FMA (one rounding instead of two) would depend on the
   target and the compiler; nothing here asks for an FMA either. Options that let the compiler reorder,
   approximate or widen arithmetic are refused below.

   A layer may be block-diagonal (a network of compositional blocks, docs/method.md §8): with groups[l] = g, W_l is
   stored dense but only its g diagonal blocks (dims[l+1]/g × dims[l]/g) are read, and only they get a gradient
   (the others' stays 0, so Adam never moves them); each block runs the unrolled 4×4 code.

   The file instantiates itself for float and double (the #include __FILE__ below). */

#ifndef real

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__FAST_MATH__) || defined(__ASSOCIATIVE_MATH__) || defined(__RECIPROCAL_MATH__) || __FINITE_MATH_ONLY__ \
    || __FLT_EVAL_METHOD__ != 0
#error "kernel.c computes as written in IEEE float and double: no -ffast-math or parts of it, no -mfpmath=387"
#endif

/* A block's size sets the order of the sums, so it is fixed rather than the machine's vector width: 32 bytes,
   AVX2's register, the widest that most x86-64 machines run at full speed. Without AVX a block is held in
   PARTS vectors of 16 bytes (GCC would split a 32-byte vector into halves that spill: 2.5× slower); lanes
   never mix until the final sums, so only those need to know which part a lane is in. */
#define BLOCK 32
#if defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif
#define PARTS (BLOCK / VBYTES)
#ifndef STREAMS
#define STREAMS 2 /* vectors of points in flight together: 3 and 4 measured no faster */
#endif
/* the last vectors, whose lanes are not all points: the last block's parts and the padding to whole streams */
#ifndef TAIL
#define TAIL (PARTS + STREAMS)
#endif
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

#define real float
#define NAME mlp_mse_f32
#define IREAL int32_t
#define SQRT __builtin_sqrtf
#include __FILE__
#undef real
#undef NAME
#undef IREAL
#undef SQRT
#define real double
#define NAME mlp_mse_f64
#define IREAL int64_t
#define SQRT __builtin_sqrt
#include __FILE__

#else

#define VEC(x) CAT(x, real) /* vec_float, forward_double, … */
#define LANES ((int64_t)(BLOCK / sizeof(real)))   /* a block's: the sums' order */
#define VLANES ((int64_t)(VBYTES / sizeof(real))) /* a vector's */
typedef real VEC(vec) __attribute__((vector_size(VBYTES)));
typedef IREAL VEC(mask) __attribute__((vector_size(VBYTES)));

/* One layer (or one diagonal block of a block-diagonal layer: W's rows are `ld` apart) on S vectors of points
(streams: stream s's activations lie s·hs vectors after stream 0's): out = W in + B, then relu (NaN kept, as
torch.relu keeps it, so that a diverging trial is still seen as diverged). Always inlined, so that the calls
below with constant shapes unroll. Each stream is computed as it would be alone; the streams only give the CPU
independent chains to overlap (one vector's chain through the layers is latency-bound). */
static inline __attribute__((always_inline)) void VEC(forward)(int64_t no, int64_t ni, int64_t ld, int S, int64_t hs,
                                                              const real *restrict W, const real *restrict B,
                                                              const VEC(vec) *restrict in, VEC(vec) *restrict out,
                                                              int relu)
{
    for (int64_t o = 0; o < no; o++)
        for (int s = 0; s < S; s++) {
            VEC(vec) z = B[o] + (VEC(vec)){0};
            for (int64_t i = 0; i < ni; i++) z += W[o * ld + i] * in[s * hs + i];
            out[s * hs + o] = relu ? (VEC(vec))(~(z < 0) & (VEC(mask))z) : z;
        }
}

/* The same layer backwards, on S streams (deltas ds apart; stream s adds into the per-lane sums as apart, 0
   when the streams share them, in stream order): aw += δ inᵀ, ab += δ, and (unless it is the first layer)
   prev = [!(in <= 0)] ⊙ Wᵀ δ, the gradient at the previous layer's pre-activation, masked by the ReLU's
   output as torch's threshold_backward masks it (a NaN output passes the gradient there too). */
static inline __attribute__((always_inline)) void VEC(backward)(int64_t no, int64_t ni, int64_t ld, int S, int64_t hs,
                                                               int64_t ds, int64_t as, const real *restrict W,
                                                               const VEC(vec) *restrict in,
                                                               const VEC(vec) *restrict delta, VEC(vec) *restrict aw,
                                                               VEC(vec) *restrict ab, VEC(vec) *restrict prev)
{
    for (int64_t o = 0; o < no; o++) {
        for (int s = 0; s < S; s++) ab[(s % PARTS) * as + o] += delta[s * ds + o];
        for (int64_t i = 0; i < ni; i++)
            for (int s = 0; s < S; s++) aw[(s % PARTS) * as + o * ld + i] += delta[s * ds + o] * in[s * hs + i];
    }
    if (!prev) return;
    for (int64_t i = 0; i < ni; i++)
        for (int s = 0; s < S; s++) {
            VEC(vec) g = {0};
            for (int64_t o = 0; o < no; o++) g += W[o * ld + i] * delta[s * ds + o];
            prev[s * ds + i] = (VEC(vec))(~(in[s * hs + i] <= 0) & (VEC(mask))g);
        }
}

/* The diagonal blocks of a block-diagonal layer (g ≥ 2 blocks, rows ld = g·ni apart) by shape: the 4×4 blocks of
   networks of blocks get fully unrolled copies with constant shapes (and stride, for two blocks: a runtime stride
   alone doubled a step's time); any other shape runs the general loops */
#define BY_SHAPE(f, no, ni, ld, ...)                                                                              \
    ((no) == 4 && (ni) == 4 && (ld) == 8 ? f(4, 4, 8, __VA_ARGS__)                                                \
     : (no) == 4 && (ni) == 4            ? f(4, 4, ld, __VA_ARGS__)                                               \
                                         : f(no, ni, ld, __VA_ARGS__))
/* A dense layer by shape: the paper's networks' 1→4, 4→4 and 4→1 get fully unrolled copies */
#define DENSE_SHAPE(f, no, ni, ...)                                                                               \
    ((no) == 4 && (ni) == 4   ? f(4, 4, 4, __VA_ARGS__)                                                           \
     : (no) == 4 && (ni) == 1 ? f(4, 1, 1, __VA_ARGS__)                                                           \
     : (no) == 1 && (ni) == 4 ? f(1, 4, 4, __VA_ARGS__)                                                           \
                              : f(no, ni, ni, __VA_ARGS__))


/* The sum of one gradient entry's lanes, in the block's order: lane v of part q is the block's lane
   q·VLANES + v, and part q's sums lie `stride` vectors after part q−1's. */
static inline real VEC(lanesum)(const VEC(vec) *a, int64_t stride)
{
    real sum = 0;
    for (int q = 0; q < PARTS; q++)
        for (int v = 0; v < VLANES; v++) sum += a[q * stride][v];
    return sum;
}

/* S = STREAMS vectors of points, k … k+S−1, through one trial (forward, MSE, and with `grad` the backward into
   the per-lane sums): each vector as it would be alone, its sums added in the vectors' order. Always inlined,
   and called with `plain` a constant: 1 for dense layers on one input (the paper's networks), whose copy then
   compiles without block offsets (a step 1.16× slower otherwise). Vector k's part of a block is k % PARTS:
   S is a multiple of PARTS, and k of S. */
static inline __attribute__((always_inline)) void VEC(vectors)(
    const int plain, int64_t k, int64_t t, int64_t N, int64_t nv, int64_t n, int64_t L,
    const int64_t *dims, const int64_t *G, const int64_t *NO, const int64_t *NI, int64_t width, const real *const *w,
    const int64_t *w_stride, const real *const *b, const int64_t *b_stride, const VEC(vec) *xs, const VEC(vec) *ys,
    const VEC(mask) *valid, VEC(vec) *h, VEC(vec) *d, VEC(vec) *acc, int64_t na, int64_t nw, int grad, VEC(vec) *sse)
{
    typedef VEC(vec) vec;
    typedef VEC(mask) mask;
    enum { S = STREAMS };
    const int64_t hs = (L + 1) * width, ds = 2 * width, as = na; /* strides: streams, and parts */
    for (int s = 0; s < S; s++) {
        if (plain || n == 1)
            h[s * hs] = xs[k + s];
        else
            for (int64_t c = 0; c < n; c++) h[s * hs + c] = xs[c * nv + k + s];
    }
    for (int64_t l = 0; l < L; l++) {
        int64_t g = G[l], no = NO[l], ni = NI[l];
        if (plain || g == 1) /* a dense layer: the call without block offsets (they cost the unrolling) */
            DENSE_SHAPE(VEC(forward), dims[l + 1], dims[l], S, hs, w[l] + t * w_stride[l], b[l] + t * b_stride[l],
                        h + l * width, h + (l + 1) * width, l < L - 1);
        else
            for (int64_t j = 0; j < g; j++)
                BY_SHAPE(VEC(forward), no, ni, dims[l], S, hs, w[l] + t * w_stride[l] + j * (no * dims[l] + ni),
                         b[l] + t * b_stride[l] + j * no, h + l * width + j * ni, h + (l + 1) * width + j * no,
                         l < L - 1);
    }
    int64_t q = k % PARTS;
    for (int s = 0; s < S; s++) {
        vec r = h[s * hs + L * width] - ys[k + s];
        if (k + s >= nv - TAIL) r = (vec)((mask)r & valid[k + s - (nv - TAIL)]); /* padding lanes */
        sse[(q + s) % PARTS] += r * r;
        d[s * ds] = r * ((real)2 / (real)N);
    }
    if (!grad) return;
    vec *delta = d, *prev = d + width, *aw = acc + q * na + nw, *ab = acc + q * na + na;
    for (int64_t l = L - 1; l >= 0; l--) {
        aw -= dims[l + 1] * dims[l], ab -= dims[l + 1];
        int64_t g = G[l], no = NO[l], ni = NI[l];
        if (plain || g == 1)
            DENSE_SHAPE(VEC(backward), dims[l + 1], dims[l], S, hs, ds, as, w[l] + t * w_stride[l], h + l * width, delta,
                        aw, ab, l ? prev : NULL);
        else
            for (int64_t j = 0; j < g; j++)
                BY_SHAPE(VEC(backward), no, ni, dims[l], S, hs, ds, as, w[l] + t * w_stride[l] + j * (no * dims[l] + ni),
                         h + l * width + j * ni, delta + j * no, aw + j * (no * dims[l] + ni), ab + j * no,
                         l ? prev + j * ni : NULL);
        vec *swap = delta;
        delta = prev, prev = swap;
    }
}

/* `vectors` for the encoding's layers (encode.c: layer 1 w = (1, 1, 1, 0), b = (m, 0, −a_0, 1); hidden
   (1, gu, gv, 0 | 0, su, sv, 0 | 0, su, sv, −Sa | 0, 0, 0, S), bias 0; output (1, gu, gv, 0), b = −m): the
   products with their zeros and ones left out, which for finite activations changes no number (x·1 = x, and
   adding a product with 0 adds +0), and of the gradient only what `encode_vjp` reads (layer 1's bias 2, the
   hidden layers' entries 1, 2, 5, 6, 9, 10, 11, 15, the output's 1 and 2). About 2.5× fewer operations. */
static inline __attribute__((always_inline)) void VEC(encoded_vectors)(
    int64_t k, int64_t t, int64_t N, int64_t nv, int64_t L, const real *const *w, const int64_t *w_stride,
    const real *const *b, const int64_t *b_stride, const VEC(vec) *xs, const VEC(vec) *ys, const VEC(mask) *valid,
    VEC(vec) *restrict h, VEC(vec) *restrict acc, int64_t na, int64_t nw, int grad, VEC(vec) *sse)
{
    typedef VEC(vec) vec;
    typedef VEC(mask) mask;
    enum { S = STREAMS };
#define RELU(z) ((vec)(~((z) < 0) & (mask)(z)))
#define KEEP(in, g) ((vec)(~((in) <= 0) & (mask)(g))) /* the gradient where the ReLU's output is not <= 0 */
    const int64_t hs = 4 * L; /* stream s's inputs of layers 1 … L−1 at h + s·hs + 4(l − 1) */
    const real *B1 = b[0] + t * b_stride[0];
    vec a[S][4], f[S];
    for (int s = 0; s < S; s++) {
        vec x = xs[k + s];
        a[s][0] = RELU(B1[0] + (vec){0} + x), a[s][1] = RELU((real)0 + (vec){0} + x);
        a[s][2] = RELU(B1[2] + (vec){0} + x), a[s][3] = RELU(B1[3] + (vec){0});
    }
    for (int64_t l = 1; l < L - 1; l++) {
        const real *H = w[l] + t * w_stride[l];
        for (int s = 0; s < S; s++) {
            vec *in = h + s * hs + 4 * (l - 1);
            for (int i = 0; i < 4; i++) in[i] = a[s][i];
            vec z0 = in[0] + H[1] * in[1] + H[2] * in[2], z1 = H[5] * in[1] + H[6] * in[2];
            vec z2 = H[9] * in[1] + H[10] * in[2] + H[11] * in[3], z3 = H[15] * in[3];
            a[s][0] = RELU(z0), a[s][1] = RELU(z1), a[s][2] = RELU(z2), a[s][3] = RELU(z3);
        }
    }
    const real *Wo = w[L - 1] + t * w_stride[L - 1], Bo = b[L - 1][t * b_stride[L - 1]];
    for (int s = 0; s < S; s++) {
        vec *in = h + s * hs + 4 * (L - 2);
        for (int i = 0; i < 4; i++) in[i] = a[s][i];
        f[s] = Bo + (vec){0} + in[0] + Wo[1] * in[1] + Wo[2] * in[2];
    }
    int64_t q = k % PARTS;
    vec dl[S][4];
    for (int s = 0; s < S; s++) {
        vec r = f[s] - ys[k + s];
        if (k + s >= nv - TAIL) r = (vec)((mask)r & valid[k + s - (nv - TAIL)]); /* padding lanes */
        sse[(q + s) % PARTS] += r * r;
        dl[s][0] = r * ((real)2 / (real)N);
    }
    if (!grad) return;
    /* acc's layout: layer l's weights (dims[l+1]·dims[l] each) from 0, its biases from nw; the output's first */
    for (int s = 0; s < S; s++) {
        vec *A = acc + (s % PARTS) * na + 4 + 16 * (L - 2), *d = dl[s];
        const vec *in = h + s * hs + 4 * (L - 2);
        A[1] += d[0] * in[1], A[2] += d[0] * in[2];
        vec p0 = d[0], p1 = Wo[1] * d[0], p2 = Wo[2] * d[0];
        d[0] = KEEP(in[0], p0), d[1] = KEEP(in[1], p1), d[2] = KEEP(in[2], p2), d[3] = (vec){0};
    }
    for (int64_t l = L - 2; l >= 1; l--) {
        const real *H = w[l] + t * w_stride[l];
        for (int s = 0; s < S; s++) {
            vec *A = acc + (s % PARTS) * na + 4 + 16 * (l - 1), *d = dl[s];
            const vec *in = h + s * hs + 4 * (l - 1);
            A[1] += d[0] * in[1], A[2] += d[0] * in[2], A[5] += d[1] * in[1], A[6] += d[1] * in[2];
            A[9] += d[2] * in[1], A[10] += d[2] * in[2], A[11] += d[2] * in[3], A[15] += d[3] * in[3];
            vec p0 = d[0], p1 = H[1] * d[0] + H[5] * d[1] + H[9] * d[2];
            vec p2 = H[2] * d[0] + H[6] * d[1] + H[10] * d[2], p3 = H[11] * d[2] + H[15] * d[3];
            d[0] = KEEP(in[0], p0), d[1] = KEEP(in[1], p1), d[2] = KEEP(in[2], p2), d[3] = KEEP(in[3], p3);
        }
    }
    for (int s = 0; s < S; s++) acc[(s % PARTS) * na + nw + 2] += dl[s][2]; /* layer 1's bias 2 */
#undef RELU
#undef KEEP
}

/* One trial's pass over the points for the encoding's layers (a function of its own: inlined into the pass
   beside the other two copies, it doubled the kernel's compile time) */
static __attribute__((noinline)) void VEC(encoded_points)(
    int64_t t, int64_t N, int64_t nv, int64_t L, const real *const *w, const int64_t *w_stride, const real *const *b,
    const int64_t *b_stride, const VEC(vec) *xs, const VEC(vec) *ys, const VEC(mask) *valid, VEC(vec) *restrict h,
    VEC(vec) *restrict acc, int64_t na, int64_t nw, int grad, VEC(vec) *sse)
{
    for (int64_t k = 0; k < nv; k += STREAMS)
        VEC(encoded_vectors)(k, t, N, nv, L, w, w_stride, b, b_stride, xs, ys, valid, h, acc, na, nw, grad, sse);
}

/* One trial's pass over the points, STREAMS vectors at a time (nv is a multiple of STREAMS). */
static inline __attribute__((always_inline)) void VEC(points)(
    const int plain, int64_t t, int64_t N, int64_t nv, int64_t n, int64_t L, const int64_t *dims, const int64_t *G,
    const int64_t *NO, const int64_t *NI, int64_t width, const real *const *w, const int64_t *w_stride,
    const real *const *b, const int64_t *b_stride, const VEC(vec) *xs, const VEC(vec) *ys, const VEC(mask) *valid,
    VEC(vec) *h, VEC(vec) *d, VEC(vec) *acc, int64_t na, int64_t nw, int grad, VEC(vec) *sse)
{
    for (int64_t k = 0; k < nv; k += STREAMS)
        VEC(vectors)(plain, k, t, N, nv, n, L, dims, G, NO, NI, width, w, w_stride, b, b_stride, xs, ys,
                     valid, h, d, acc, na, nw, grad, sse);
}

/* the lane count, read by kernel.describe() from the build itself */
int64_t CAT(NAME, lanes)(void) { return LANES; }

/* The pass (forward, MSE, backward) of every trial; `encoded`: the layers are the encoding's (encode.c), whose
   zeros and ones the pass skips, and only the gradients `encode_vjp` reads are computed (`encoded_vectors`). */
static int VEC(pass)(int64_t T, int64_t N, int64_t L, const int64_t *dims, const int64_t *groups, const real *const *w,
                     const int64_t *w_stride, const real *const *b, const int64_t *b_stride, const real *x,
                     const real *y, int64_t y_stride, real *loss, real *const *gw, real *const *gb, int encoded)
{
    typedef VEC(vec) vec;
    typedef VEC(mask) mask;
    /* vectors of points: whole blocks, and whole streams of vectors */
    int64_t width = 0, nw = 0, nb = 0, nv = ((N + LANES - 1) / LANES * PARTS + STREAMS - 1) / STREAMS * STREAMS;
    for (int64_t l = 0; l <= L; l++) width = dims[l] > width ? dims[l] : width;
    for (int64_t l = 0; l < L; l++) nw += dims[l + 1] * dims[l], nb += dims[l + 1];
    int64_t na = nw + nb;
    /* h: every layer's input for one vector of points; acc: per-lane sums of the gradients, a set for each
       part of a block; xs, ys: the points and one trial's targets, padded to whole blocks and whole streams;
       valid: which lanes of the last TAIL vectors are points. Padding lanes repeat the last point, so their activations are
       finite wherever the real ones are and their zeroed residual adds exactly nothing to the gradient sums
       (0 · inf would be NaN). */
    int64_t n = dims[0]; /* the input's dimension: x is [n, N], one coordinate after another */
    vec *h = aligned_alloc(VBYTES, VBYTES * (size_t)(STREAMS * ((L + 1) * width + 2 * width) + PARTS * na + (n + 1) * nv + TAIL));
    if (!h) return 1;
    vec *d = h + STREAMS * (L + 1) * width, *acc = d + STREAMS * 2 * width, *xs = acc + PARTS * na, *ys = xs + n * nv;
    mask *valid = (mask *)(ys + nv);
    memset(xs, 0, VBYTES * (size_t)((n + 1) * nv));
    for (int64_t c = 0; c < n; c++) {
        real *xc = (real *)(xs + c * nv);
        memcpy(xc, x + c * N, sizeof(real) * (size_t)N);
        for (int64_t p = N; p < nv * VLANES; p++) xc[p] = x[c * N + N - 1];
    }
    for (int64_t q = 0; q < TAIL; q++)
        for (int64_t v = 0; v < VLANES; v++) valid[q][v] = (nv - TAIL + q) * VLANES + v < N ? -1 : 0;
    /* each layer's diagonal blocks and their shape, once: two integer divisions per layer and point vector
       were half of a step's time */
    int64_t G[L], NO[L], NI[L];
    int plain = n == 1;
    for (int64_t l = 0; l < L; l++) {
        G[l] = groups ? groups[l] : 1, NO[l] = dims[l + 1] / G[l], NI[l] = dims[l] / G[l];
        plain &= G[l] == 1;
    }
    for (int64_t t = 0; t < T; t++) {
        vec sse[PARTS];
        for (int q = 0; q < PARTS; q++) sse[q] = (vec){0};
        memcpy(ys, y + t * y_stride, sizeof(real) * (size_t)N);
        memset(acc, 0, VBYTES * (size_t)(PARTS * na));
        if (encoded)
            VEC(encoded_points)(t, N, nv, L, w, w_stride, b, b_stride, xs, ys, valid, h, acc, na, nw, gw != NULL, sse);
        else if (plain) /* two copies of the loop over the points: the plain one compiles as before blocks existed */
            VEC(points)(1, t, N, nv, 1, L, dims, G, NO, NI, width, w, w_stride, b, b_stride, xs, ys, valid, h, d, acc,
                        na, nw, gw != NULL, sse);
        else
            VEC(points)(0, t, N, nv, n, L, dims, G, NO, NI, width, w, w_stride, b, b_stride, xs, ys, valid, h, d, acc,
                        na, nw, gw != NULL, sse);
        double s = 0;
        for (int q = 0; q < PARTS; q++)
            for (int v = 0; v < VLANES; v++) s += sse[q][v];
        loss[t] = (real)(s / (double)N);
        if (!gw) continue;
        const vec *a = acc;
        for (int64_t l = 0; l < L; l++)
            for (int64_t j = 0, k = dims[l + 1] * dims[l]; j < k; j++) gw[l][t * k + j] = VEC(lanesum)(a++, na);
        for (int64_t l = 0; l < L; l++)
            for (int64_t j = 0; j < dims[l + 1]; j++) gb[l][t * dims[l + 1] + j] = VEC(lanesum)(a++, na);
    }
    free(h);
    return 0;
}

int NAME(int64_t T, int64_t N, int64_t L, const int64_t *dims, const int64_t *groups, const real *const *w,
         const int64_t *w_stride, const real *const *b, const int64_t *b_stride, const real *x, const real *y,
         int64_t y_stride, real *loss, real *const *gw, real *const *gb)
{
    return VEC(pass)(T, N, L, dims, groups, w, w_stride, b, b_stride, x, y, y_stride, loss, gw, gb, 0);
}

#include "encode.c"

/* Adam's update of n entries, each rounded as optim.adam's torch ops round it. */
static void VEC(update)(real *restrict flat, const real *restrict grad, real *restrict m, real *restrict v, int64_t n,
                        real b1, real b2, real c1, real c2, real bc2, real eps, real lrb)
{
    for (int64_t e = 0; e < n; e++) {
        real g = grad[e];
        m[e] = m[e] * b1 + g * c1;
        v[e] = v[e] * b2 + g * g * c2;
        flat[e] = flat[e] - m[e] / (SQRT(v[e]) / bc2 + eps) * lrb;
    }
}

/* Adam on the raw weights (or, with an encoding `e`, on the peaks and scales) for steps first … last of a training (optim.adam's update, spelt as it spells it in
   torch, one rounding per operation in the same order: the same bits), each step one call of the pass above
   into the gradient buffer. flat, grad, m, v: parameter after parameter, parameter j a [T, sizes[j]] block; the
   layers' pointers point into flat and grad. Per step s (row r = s − first): history[r·T + t] = trial t's loss;
   a trial whose loss is not finite is dead from then on (alive[t] = 0) and never moves again. scalars[2r],
   scalars[2r+1]: the step's (1 − b2^s)^½ and lr / (1 − b1^s), as Python computes them. With `e`, flat holds
   [θ, s_1, s] of the encoding, the layers are its buffers (written by `encode` before each pass), and the
   pass's layer gradients are taken back to [θ, s_1, s] in grad by `encode_vjp`. */
int CAT(NAME, adam)(int64_t T, int64_t N, int64_t L, const int64_t *dims, const int64_t *groups, const real *const *w,
                    const int64_t *w_stride, const real *const *b, const int64_t *b_stride, const real *x,
                    const real *y, int64_t y_stride, real *const *gw, real *const *gb, real *flat,
                    real *grad, real *m, real *v, int64_t nparams, const int64_t *sizes, int64_t steps,
                    const double *scalars, double b1, double b2, double eps, real *history, int8_t *alive,
                    const struct CAT(NAME, enc) * e)
{
    const int64_t d = e ? e->d : 0;
    const real rb1 = (real)b1, rb2 = (real)b2, c1 = (real)(1 - b1), c2 = (real)(1 - b2), reps = (real)eps;
    for (int64_t r = 0; r < steps; r++) {
        real *loss = history + r * T;
        if (e) CAT(NAME, encode)(T, e, flat, flat + T * (d + 1), flat + T * (d + 2), (real *const *)w, w_stride,
                                 (real *const *)b, b_stride);
        if (VEC(pass)(T, N, L, dims, groups, w, w_stride, b, b_stride, x, y, y_stride, loss, gw, gb, e != NULL))
            return 1;
        if (e) CAT(NAME, encode_vjp)(T, e, flat, flat + T * (d + 1), flat + T * (d + 2), gw, gb, grad,
                                     grad + T * (d + 1), grad + T * (d + 2));
        for (int64_t t = 0; t < T; t++) alive[t] &= !!__builtin_isfinite(loss[t]);
        const real bc2 = (real)scalars[2 * r], lrb = (real)scalars[2 * r + 1];
        int64_t at = 0;
        for (int64_t j = 0; j < nparams; j++)
            for (int64_t t = 0; t < T;) { /* each run of live trials in one loop, which the compiler vectorises */
                int64_t run = t;
                while (run < T && alive[run]) run++;
                if (run > t) VEC(update)(flat + at, grad + at, m + at, v + at, (run - t) * sizes[j], rb1, rb2, c1, c2,
                                         bc2, reps, lrb);
                at += (run - t + (run < T)) * sizes[j];
                t = run + 1;
            }
    }
    return 0;
}

#undef VEC
#undef LANES
#undef VLANES
#undef BY_SHAPE
#undef DENSE_SHAPE
#endif
