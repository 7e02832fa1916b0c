/* The pretraining's encoding in C (included by kernel.c once per type): the network of peaks and scales and the
   map of its layer gradients back to them, the same arithmetic as model.encode / model.law_scales and their
   vjps (docs/method.md §3–4), which stay the reference (torch, autograd-checked; tests/test_stages.py).

   Per trial, with a_i the peaks (θ clamped to [lo, hi], or sigmoid(θ)), i = 0 … d:
       r_i = (1 − a_i) a_{i+1},   law_k = Π_{i≤k} r_i (products in double, as torch's float32 cumprod takes
       them), times s_1 / r_0 with a trainable s_1;   s = the trial's own scales if free, else the law;
       c_k = |s_k|, c_{−1} = 1,   ratio_k = c_k / c_{k−1},   gain_k = sign · s_k / c_{k−1},
       u_k = 1 / a_k,   v_k = −1 / (a_k (1 − a_k)),   m = Σ c_k (the offset, held constant: no gradient);
   layer 1: w = (1, 1, 1, 0), b = (m, 0, −a_0, 1); hidden layer k < d − 1, S = ratio_k:
       (1, gain u, gain v, 0 | 0, S u, S v, 0 | 0, S u, S v, −S a_{k+1} | 0, 0, 0, S), bias 0;
   output: w = (1, gain_{d−1} u_{d−1}, gain_{d−1} v_{d−1}, 0), b = −m.
   Sums run in index order. */

/* What the encoding is: the reparameterisation's settings and each trial's `free` and `sign`. */
struct CAT(NAME, enc) {
    int64_t d, sigmoid, trainable, offset;
    double lo, hi;
    const int8_t *free;
    const real *sign;
};

/* One trial's intermediates, for its layers and its vjp: ten arrays of d + 1. */
#define ENC_SCRATCH 10
static void VEC(intermediates)(const struct CAT(NAME, enc) * e, int64_t t, const real *theta, real s1, const real *s,
                               real *z)
{
    const int64_t d = e->d;
    real *a = z, *ratios = z + (d + 1), *law = z + 2 * (d + 1), *sc = z + 3 * (d + 1), *cprev = z + 4 * (d + 1);
    real *ratio = z + 5 * (d + 1), *gain = z + 6 * (d + 1), *u = z + 7 * (d + 1), *v = z + 8 * (d + 1);
    real *c = z + 9 * (d + 1);
    const real lo = (real)e->lo, hi = (real)e->hi, sign = e->sign[t];
    for (int64_t k = 0; k <= d; k++)
        a[k] = e->sigmoid ? 1 / (1 + (real)__builtin_exp(-(double)theta[k]))
                          : (theta[k] < lo ? lo : theta[k] > hi ? hi : theta[k]);
    double p = 1;
    for (int64_t k = 0; k < d; k++) {
        ratios[k] = (1 - a[k]) * a[k + 1];
        p *= (double)ratios[k];
        law[k] = (real)p;
    }
    if (e->trainable) {
        real f = s1 / ratios[0];
        for (int64_t k = 0; k < d; k++) law[k] = law[k] * f;
    }
    for (int64_t k = 0; k < d; k++) {
        sc[k] = e->free[t] ? s[k] : law[k];
        c[k] = __builtin_fabs(sc[k]);
        cprev[k] = k ? c[k - 1] : 1;
        ratio[k] = c[k] / cprev[k];
        gain[k] = sign * sc[k] / cprev[k];
        u[k] = 1 / a[k];
        v[k] = (real)-1 / (a[k] * (1 - a[k]));
    }
}

/* The layers of trials 0 … T−1 from their parameters θ [T, d+1], s_1 [T], s [T, d], written into the layer
   buffers the kernel reads (layer 1's weight, the hidden layers' biases and the output's fixed entries are
   set by the caller once). */
int CAT(NAME, encode)(int64_t T, const struct CAT(NAME, enc) * e, const real *theta, const real *s1, const real *s,
                      real *const *w, const int64_t *w_stride, real *const *b, const int64_t *b_stride)
{
    const int64_t d = e->d;
    real z[ENC_SCRATCH * (d + 1)];
    for (int64_t t = 0; t < T; t++) {
        VEC(intermediates)(e, t, theta + t * (d + 1), s1[t], s + t * d, z);
        const real *a = z, *ratio = z + 5 * (d + 1), *gain = z + 6 * (d + 1);
        const real *u = z + 7 * (d + 1), *v = z + 8 * (d + 1), *c = z + 9 * (d + 1);
        real m = 0;
        for (int64_t k = 0; k < d && e->offset; k++) m += c[k];
        real *b1 = b[0] + t * b_stride[0];
        b1[0] = m, b1[2] = -a[0];
        for (int64_t k = 0; k + 1 < d; k++) {
            real *H = w[k + 1] + t * w_stride[k + 1], S = ratio[k], su = S * u[k], sv = S * v[k];
            H[1] = gain[k] * u[k], H[2] = gain[k] * v[k];
            H[5] = su, H[6] = sv, H[9] = su, H[10] = sv, H[11] = -S * a[k + 1], H[15] = S;
        }
        real *wo = w[d] + t * w_stride[d];
        wo[1] = gain[d - 1] * u[d - 1], wo[2] = gain[d - 1] * v[d - 1];
        b[d][t * b_stride[d]] = -m;
    }
    return 0;
}

/* dL/dθ, dL/ds_1, dL/ds ([T, d+1], [T], [T, d]) from the kernel's gradients of the layers of `encode`
   (gw, gb: each layer's [T, …], contiguous). The clamp passes the gradient where θ ∈ [lo, hi] (edges
   included, as torch's clamp), a free trial's scales take it directly, a law trial's reach the peaks and a
   trainable s_1; a tied s_1 (and s_1 of a free trial) gets 0. */
int CAT(NAME, encode_vjp)(int64_t T, const struct CAT(NAME, enc) * e, const real *theta, const real *s1,
                          const real *s, real *const *gw, real *const *gb, real *g_theta, real *g_s1, real *g_s)
{
    const int64_t d = e->d;
    real z[ENC_SCRATCH * (d + 1)], g0u[d], g0v[d], dgain[d], du[d], dv[d], dratio[d], dc[d], dsc[d], tail[d],
        dpk[d + 1];
    for (int64_t t = 0; t < T; t++) {
        VEC(intermediates)(e, t, theta + t * (d + 1), s1[t], s + t * d, z);
        const real *a = z, *ratios = z + (d + 1), *law = z + 2 * (d + 1), *sc = z + 3 * (d + 1);
        const real *cprev = z + 4 * (d + 1), *ratio = z + 5 * (d + 1), *gain = z + 6 * (d + 1);
        const real *u = z + 7 * (d + 1), *v = z + 8 * (d + 1), sign = e->sign[t];
        const real *gb1 = gb[0] + t * 4, *gwo = gw[d] + t * 4;
        g0u[d - 1] = gwo[1], g0v[d - 1] = gwo[2];
        for (int64_t k = 0; k + 1 < d; k++) g0u[k] = gw[k + 1][t * 16 + 1], g0v[k] = gw[k + 1][t * 16 + 2];
        for (int64_t k = 0; k < d; k++) {
            dgain[k] = g0u[k] * u[k] + g0v[k] * v[k];
            du[k] = gain[k] * g0u[k], dv[k] = gain[k] * g0v[k];
            dratio[k] = 0, dpk[k] = 0;
        }
        dpk[d] = 0;
        for (int64_t k = 0; k + 1 < d; k++) {
            const real *G = gw[k + 1] + t * 16, S = ratio[k];
            real su = G[5] + G[9], sv = G[6] + G[10], g23 = G[11];
            dratio[k] = su * u[k] + sv * v[k] - g23 * a[k + 1] + G[15];
            du[k] += S * su, dv[k] += S * sv;
            dpk[k + 1] -= S * g23;
        }
        for (int64_t k = 0; k < d; k++) dpk[k] += dv[k] * (1 - 2 * a[k]) * v[k] * v[k] - du[k] * u[k] * u[k];
        dpk[0] -= gb1[2];
        for (int64_t k = 0; k < d; k++) dc[k] = dratio[k] / cprev[k];
        for (int64_t k = 0; k + 1 < d; k++)
            dc[k] -= (ratio[k + 1] * dratio[k + 1] + gain[k + 1] * dgain[k + 1]) / cprev[k + 1];
        for (int64_t k = 0; k < d; k++) {
            real sg = sc[k] > 0 ? 1 : sc[k] < 0 ? -1 : sc[k]; /* numpy's sign: 0 for 0, NaN for NaN */
            dsc[k] = sign * dgain[k] / cprev[k] + sg * dc[k];
        }
        /* the law, s_k = s_1 Π_{i=1..k} r_i (tied: Π_{i=0..k} r_i): d law_k / d r_i = law_k / r_i for i ≤ k */
        const int law_trial = !e->free[t];
        real acc = 0, s1g = 0, lead = 1;
        for (int64_t k = d - 1; k >= 0; k--) {
            acc += law_trial ? dsc[k] * law[k] : 0;
            tail[k] = acc / ratios[k];
        }
        if (e->trainable) {
            for (int64_t k = 0; k < d; k++) {
                if (k) lead = lead * ratios[k];
                s1g += law_trial ? dsc[k] * lead : 0;
            }
            tail[0] = 0;
        }
        g_s1[t] = e->trainable ? s1g : 0;
        for (int64_t k = 0; k < d; k++) dpk[k] -= tail[k] * a[k + 1];
        for (int64_t k = 0; k < d; k++) dpk[k + 1] += tail[k] * (1 - a[k]);
        const real lo = (real)e->lo, hi = (real)e->hi;
        for (int64_t k = 0; k <= d; k++) {
            real th = theta[t * (d + 1) + k];
            g_theta[t * (d + 1) + k] = e->sigmoid ? dpk[k] * (1 - a[k]) * a[k] : (th >= lo && th <= hi ? dpk[k] : 0);
        }
        for (int64_t k = 0; k < d; k++) g_s[t * d + k] = e->free[t] ? dsc[k] : 0;
    }
    return 0;
}
