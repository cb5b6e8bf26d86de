/* RNNPool with FastGRNN cells (../shared/RNNPOOL.md) in int16 fixed point, the arithmetic of
 * compiler/ir/ops/rnnpool.py step for step.
 *
 * Each patch is read by stride straight out of its producer's buffer (no patch copy): W1 x is
 * computed once per patch pixel (the row and the column sweep through a pixel share it), W2 r
 * once per summary (shared by RNN2's forward and backward sweeps). U h, the bulk of the work,
 * runs two MACs per SMLALD into a 64-bit accumulator on DSP cores. */
#include "tvc_common.h"

#define TVC_PRE_CLAMP (1 << 24) /* Q11 pre-activations are held within +-2^24 (far past +-8) */

static inline int32_t tvc_pre(int64_t acc, int32_t shift) {
    return tvc_clamp32(tvc_shift_round(acc, shift), -TVC_PRE_CLAMP, TVC_PRE_CLAMP);
}

/* Q15 sigmoid of a Q11 code: 257 points over [-8, 8], rounded linear interpolation */
static inline int32_t tvc_sigmoid_q15(const int16_t *table, int32_t v) {
    int32_t i = v + (8 << 11);
    i = i < 0 ? 0 : (i > (256 << 7) ? (256 << 7) : i);
    const int32_t idx = i >> 7, frac = i & 127;
    const int32_t lo = table[idx];
    return lo + ((((int32_t)table[idx + 1] - lo) * frac + 64) >> 7);
}

/* sum_k u[k] * h[k], exact in 64 bits */
static inline int64_t tvc_dot_s16_wide(const int16_t *u, const int16_t *h, int32_t n) {
    int64_t acc = 0;
    int32_t k = 0;
#if defined(__ARM_FEATURE_DSP)
    for (; k + 2 <= n; k += 2) {
        int16x2_t a, b;
        memcpy(&a, u + k, 4);
        memcpy(&b, h + k, 4);
        acc = __smlald(a, b, acc);
    }
#endif
    for (; k < n; ++k) {
        acc += (int32_t)u[k] * (int32_t)h[k];
    }
    return acc;
}

typedef struct {
    int32_t hidden, in_dim;
    const int16_t *u;
    const int32_t *bz, *bh;
    int32_t shift_u, shift_c, zeta, nu;
} tvc_fastgrnn_t;

/* final state of a FastGRNN over `steps` inputs (W x already in Q11, `vw_step` int32s apart,
 * negative for backward sweeps) into h; tmp holds the next state while h is still read */
static void tvc_fastgrnn(const tvc_fastgrnn_t *c, const int16_t *sig, const int32_t *vw, int32_t vw_step,
                         int32_t steps, int16_t *h, int16_t *tmp) {
    const int32_t n = c->hidden;
    for (int32_t t = 0; t < steps; ++t, vw += vw_step) {
        for (int32_t u = 0; u < n; ++u) {
            int32_t v = vw[u];
            if (t > 0) {
                v += tvc_pre(tvc_dot_s16_wide(c->u + u * n, h, n), c->shift_u);
            }
            const int32_t z = tvc_sigmoid_q15(sig, v + c->bz[u]);
            const int32_t g = 2 * tvc_sigmoid_q15(sig, 2 * (v + c->bh[u])) - 32768;
            const int32_t coef = ((c->zeta * (32768 - z) + (1 << 14)) >> 15) + c->nu;
            const int32_t keep = t > 0 ? (z * h[u] + (1 << 14)) >> 15 : 0;
            const int64_t hn = keep + tvc_shift_round((int64_t)coef * g, c->shift_c);
            tmp[u] = (int16_t)tvc_clamp32(hn, -32768, 32767);
        }
        memcpy(h, tmp, (size_t)n * sizeof(int16_t));
    }
}

/* vw[s * out + u] = W[u] . x_s in Q11 for `count` int16 vectors x_s, `x_step` apart */
static void tvc_project_s16(const int16_t *w, int32_t out, int32_t in, int32_t shift, const int16_t *x,
                            int32_t x_step, int32_t count, int32_t *vw) {
    for (int32_t s = 0; s < count; ++s, x += x_step, vw += out) {
        for (int32_t u = 0; u < out; ++u) {
            vw[u] = tvc_pre(tvc_dot_s16_wide(w + u * in, x, in), shift);
        }
    }
}

#define TVC_RNNPOOL_BODY(T)                                                                        \
    const int32_t ph = p->patch_h, pw = p->patch_w, h1 = p->hidden1, h2 = p->hidden2, C = p->in_c; \
    int32_t *vw1 = scratch;                                                                        \
    int32_t *vw2 = vw1 + ph * pw * h1;                                                             \
    int16_t *summary = (int16_t *)(vw2 + (ph + pw) * h2);                                          \
    int16_t *state = summary + (ph + pw) * h1;                                                     \
    const int32_t hmax = h1 > h2 ? h1 : h2;                                                        \
    int16_t *tmp = state + hmax;                                                                   \
    const tvc_fastgrnn_t rnn1 = {h1, C, p->u1, p->bz1, p->bh1, p->shift_u1, p->shift_c1, p->zeta1, p->nu1}; \
    const tvc_fastgrnn_t rnn2 = {h2, h1, p->u2, p->bz2, p->bh2, p->shift_u2, p->shift_c2, p->zeta2, p->nu2}; \
    for (int32_t oy = 0; oy < rows; ++oy) {                                                        \
        for (int32_t ox = 0; ox < p->out_w; ++ox) {                                                \
            const T *patch = in + ((oy * p->stride_h) * p->in_w + ox * p->stride_w) * C;           \
            for (int32_t i = 0; i < ph; ++i) {                                                     \
                for (int32_t j = 0; j < pw; ++j) {                                                 \
                    const T *x = patch + (i * p->in_w + j) * C;                                    \
                    int32_t *v = vw1 + (i * pw + j) * h1;                                          \
                    for (int32_t u = 0; u < h1; ++u) {                                             \
                        const int16_t *w = p->w1 + u * C;                                          \
                        int64_t acc = 0;                                                           \
                        for (int32_t c = 0; c < C; ++c) {                                          \
                            acc += (int32_t)w[c] * (int32_t)x[c];                                  \
                        }                                                                          \
                        v[u] = tvc_pre(acc, p->shift_w1);                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            for (int32_t i = 0; i < ph; ++i) { /* row i sweeps left to right */                    \
                tvc_fastgrnn(&rnn1, p->sigmoid, vw1 + i * pw * h1, h1, pw, summary + i * h1, tmp); \
            }                                                                                      \
            for (int32_t j = 0; j < pw; ++j) { /* column j sweeps top to bottom */                 \
                tvc_fastgrnn(&rnn1, p->sigmoid, vw1 + j * h1, pw * h1, ph, summary + (ph + j) * h1, tmp); \
            }                                                                                      \
            tvc_project_s16(p->w2, h2, h1, p->shift_w2, summary, h1, ph + pw, vw2);                \
            T *y = out + (oy * p->out_w + ox) * p->out_c;                                          \
            for (int32_t k = 0; k < 4; ++k) {                                                      \
                const int32_t len = k < 2 ? ph : pw;                                               \
                const int32_t *first = vw2 + ((k < 2 ? 0 : ph) + ((k & 1) ? len - 1 : 0)) * h2;    \
                tvc_fastgrnn(&rnn2, p->sigmoid, first, (k & 1) ? -h2 : h2, len, state, tmp);       \
                for (int32_t u = 0; u < h2; ++u) {                                                 \
                    y[k * h2 + u] = (T)tvc_clamp32(tvc_shift_round(state[u], p->out_shift),        \
                                                   p->out_min, p->out_max);                        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

void TVC_FN(rnnpool_s8)(const tvc_rnnpool_t *p, const int8_t *in, int32_t rows, int32_t *scratch, int8_t *out) {
    TVC_RNNPOOL_BODY(int8_t)
}

void TVC_FN(rnnpool_s16)(const tvc_rnnpool_t *p, const int16_t *in, int32_t rows, int32_t *scratch, int16_t *out) {
    TVC_RNNPOOL_BODY(int16_t)
}
