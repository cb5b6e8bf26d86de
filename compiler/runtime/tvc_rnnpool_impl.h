/* RNNPool's kernel bodies (compiler/runtime/tvc_rnnpool.c), shared by the library functions and by
 * the per-layer specialized RNNPool of --optimize speed (compiler/runtime/tvc_special.h), which
 * defines TVC_RNN_INLINE as always-inline before including this: the layer's parameter struct
 * is then a constant whose fields (hidden sizes, shifts, patch geometry) GCC folds into the
 * code, unrolling the short U h products. */
#ifndef TVC_RNNPOOL_IMPL_H
#define TVC_RNNPOOL_IMPL_H

#include "tvc_common.h"

#ifndef TVC_RNN_INLINE
#define TVC_RNN_INLINE static
#endif

/* Q11 pre-activation parts are held within [-2^24, 2^24) (far past +-8) */

/* an exact int32 product sum (the quantizer bounds every weight row's L1 norm so that none
 * overflows) rounded to Q11: x * 2^-s (s > 0, checked by the compiler), half up, computed as
 * floor((floor(x / 2^(s-1)) + 1) / 2), which cannot overflow */
static inline int32_t tvc_round_shift(int32_t x, int32_t s) {
    return ((x >> (s - 1)) + 1) >> 1;
}

/* saturations: one SSAT/USAT instruction where the core has them (ACLE's __ssat trips
 * -Wsign-conversion inside its own macro, hence the asm) */
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
#define TVC_SAT_FN(name, insn)                                \
    static inline int32_t name(int32_t x) {                   \
        int32_t r;                                            \
        __asm__(insn : "=r"(r) : "r"(x));                     \
        return r;                                             \
    }
TVC_SAT_FN(tvc_ssat25, "ssat %0, #25, %1")
TVC_SAT_FN(tvc_ssat16, "ssat %0, #16, %1")
TVC_SAT_FN(tvc_usat12, "usat %0, #12, %1")
#else
static inline int32_t tvc_ssat25(int32_t x) { return tvc_clamp32(x, -(1 << 24), (1 << 24) - 1); }
static inline int32_t tvc_ssat16(int32_t x) { return tvc_clamp32(x, -32768, 32767); }
static inline int32_t tvc_usat12(int32_t x) { return tvc_clamp32(x, 0, 4095); }
#endif

static inline int32_t tvc_pre(int32_t acc, int32_t s) {
    return tvc_ssat25(tvc_round_shift(acc, s));
}

/* Q15 sigmoid of a Q11 code v: the nearest of 4096 entries over [-8, 8); `biased` is v plus
 * the table offset (folded into the biases by the compiler) */
static inline int32_t tvc_sigmoid_q15(const int16_t *table, int32_t biased) {
    return table[tvc_usat12(biased >> 3)];
}

/* four rows of U times h, sharing each load of h */
#if defined(TVC_RNN_CONSTANT_SHAPES) && defined(__ARM_FEATURE_DSP)
/* the layer's own RNNPool (tvc_special.h): n is a constant, rows and h word-aligned when n is
 * a multiple of 4 (the compiler checks), so the product unrolls into LDRDs at immediate
 * offsets: 16 MACs per LDRD of h, four of U and eight SMLADs */
#define TVC_LDRD_AT(P, OFF, A, B)                                                          \
    __asm__("ldrd %0, %1, [%2, %3]"                                                        \
            : "=r"(A), "=r"(B)                                                             \
            : "r"(P), "n"(OFF), "m"(*(const tvc_pair_t *)(const void *)((const char *)(P) + (OFF))))
static inline void tvc_dot4_s16_slow(const int16_t *u, int32_t n, const int16_t *h, int32_t *acc);
static TVC_ALWAYS_INLINE void tvc_dot4_s16(const int16_t *u, const int32_t n, const int16_t *h, int32_t *acc) {
    if (n & 3) {
        tvc_dot4_s16_slow(u, n, h, acc);
        return;
    }
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma GCC unroll 64
    for (int32_t k = 0; k < n; k += 4) {
        int32_t h01, h23, a, b;
        TVC_LDRD_AT(h, 2 * k, h01, h23);
        TVC_LDRD_AT(u, 2 * k, a, b);
        s0 = __smlad(b, h23, __smlad(a, h01, s0));
        TVC_LDRD_AT(u, 2 * (n + k), a, b);
        s1 = __smlad(b, h23, __smlad(a, h01, s1));
        TVC_LDRD_AT(u, 2 * (2 * n + k), a, b);
        s2 = __smlad(b, h23, __smlad(a, h01, s2));
        TVC_LDRD_AT(u, 2 * (3 * n + k), a, b);
        s3 = __smlad(b, h23, __smlad(a, h01, s3));
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}
#define tvc_dot4_s16 tvc_dot4_s16_slow
#endif
static inline void tvc_dot4_s16(const int16_t *u, int32_t n, const int16_t *h, int32_t *acc) {
    const int16_t *u0 = u, *u1 = u + n, *u2 = u + 2 * n, *u3 = u + 3 * n;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = 0;
#if defined(__ARM_FEATURE_DSP)
    for (; k + 2 <= n; k += 2) {
        int16x2_t hv, w0, w1, w2, w3;
        memcpy(&hv, h + k, 4);
        memcpy(&w0, u0 + k, 4);
        memcpy(&w1, u1 + k, 4);
        memcpy(&w2, u2 + k, 4);
        memcpy(&w3, u3 + k, 4);
        s0 = __smlad(w0, hv, s0);
        s1 = __smlad(w1, hv, s1);
        s2 = __smlad(w2, hv, s2);
        s3 = __smlad(w3, hv, s3);
    }
#endif
    for (; k < n; ++k) {
        const int32_t hk = h[k];
        s0 += (int32_t)u0[k] * hk;
        s1 += (int32_t)u1[k] * hk;
        s2 += (int32_t)u2[k] * hk;
        s3 += (int32_t)u3[k] * hk;
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}

#if defined(TVC_RNN_CONSTANT_SHAPES) && defined(__ARM_FEATURE_DSP)
#undef tvc_dot4_s16
#endif

/* two rows of U times h: 2 x 2 MACs per pair of SMLADs sharing the h load */
static inline void tvc_dot2_s16(const int16_t *u0, const int16_t *u1, const int16_t *h, int32_t n, int32_t *a0,
                                int32_t *a1) {
    int32_t s0 = 0, s1 = 0, k = 0;
#if defined(__ARM_FEATURE_DSP)
    for (; k + 2 <= n; k += 2) {
        int16x2_t hv, w0, w1;
        memcpy(&hv, h + k, 4);
        memcpy(&w0, u0 + k, 4);
        memcpy(&w1, u1 + k, 4);
        s0 = __smlad(w0, hv, s0);
        s1 = __smlad(w1, hv, s1);
    }
#endif
    for (; k < n; ++k) {
        s0 += (int32_t)u0[k] * (int32_t)h[k];
        s1 += (int32_t)u1[k] * (int32_t)h[k];
    }
    *a0 = s0;
    *a1 = s1;
}

typedef struct {
    int32_t hidden, in_dim;
    const int16_t *u;
    const int32_t *bz, *bh;
    int32_t shift_u, shift_c;
    const uint16_t *coef; /* zeta (1 - z) + nu in Q15 for each sigmoid table entry z */
} tvc_fastgrnn_t;

/* one unit's update from its pre-activation v (Q11) and old state h (0 at the first step) */
static inline int16_t tvc_fastgrnn_unit(const tvc_fastgrnn_t *c, const int16_t *sig, int32_t v, int32_t u,
                                        int32_t h) {
    const int32_t iz = tvc_usat12((v + c->bz[u]) >> 3);
    const int32_t z = sig[iz], coef = c->coef[iz];
    /* tanh = 2 sigmoid(2v) - 1: coef * tanh * 2^-s == coef * (sigmoid - 1/2) * 2^-(s-1) */
    const int32_t half_g = tvc_sigmoid_q15(sig, 2 * v + c->bh[u]) - 16384;
    const int32_t hn = ((z * h + (1 << 14)) >> 15) + tvc_round_shift(coef * half_g, c->shift_c - 1);
    return (int16_t)tvc_ssat16(hn);
}

/* final state of a FastGRNN over `steps` inputs (W x already in Q11, `vw_step` int32s apart,
 * negative for backward sweeps) into h; the steps alternate between h and tmp */
TVC_RNN_INLINE void TVC_FN(fastgrnn)(const tvc_fastgrnn_t *c, const int16_t *sig, const int32_t *vw, int32_t vw_step,
                         int32_t steps, int16_t *h, int16_t *tmp) {
    const int32_t n = c->hidden;
    int16_t *cur = tmp, *next = h; /* first step writes h... unless the step count is even */
    if ((steps & 1) == 0) {
        cur = h;
        next = tmp;
    }
    for (int32_t u = 0; u < n; ++u) { /* step 0: h_0 = 0, no U term */
        next[u] = tvc_fastgrnn_unit(c, sig, vw[u], u, 0);
    }
    for (int32_t t = 1; t < steps; ++t) {
        int16_t *old = next;
        next = cur;
        cur = old;
        vw += vw_step;
        int32_t u = 0;
        for (; u + 4 <= n; u += 4) {
            int32_t a[4];
            tvc_dot4_s16(c->u + u * n, n, cur, a);
            next[u] = tvc_fastgrnn_unit(c, sig, vw[u] + tvc_pre(a[0], c->shift_u), u, cur[u]);
            next[u + 1] = tvc_fastgrnn_unit(c, sig, vw[u + 1] + tvc_pre(a[1], c->shift_u), u + 1, cur[u + 1]);
            next[u + 2] = tvc_fastgrnn_unit(c, sig, vw[u + 2] + tvc_pre(a[2], c->shift_u), u + 2, cur[u + 2]);
            next[u + 3] = tvc_fastgrnn_unit(c, sig, vw[u + 3] + tvc_pre(a[3], c->shift_u), u + 3, cur[u + 3]);
        }
        for (; u < n; u += 2) {
            int32_t a0, a1;
            const int32_t pair = u + 1 < n;
            tvc_dot2_s16(c->u + u * n, c->u + (u + pair) * n, cur, n, &a0, &a1);
            next[u] = tvc_fastgrnn_unit(c, sig, vw[u] + tvc_pre(a0, c->shift_u), u, cur[u]);
            if (pair) {
                next[u + 1] = tvc_fastgrnn_unit(c, sig, vw[u + 1] + tvc_pre(a1, c->shift_u), u + 1, cur[u + 1]);
            }
        }
    }
}

/* vw[s * out + u] = W[u] . x_s in Q11 for `count` int16 vectors x_s, `x_step` apart */
TVC_RNN_INLINE void TVC_FN(project_s16)(const int16_t *w, int32_t out, int32_t in, int32_t shift, const int16_t *x,
                            int32_t x_step, int32_t count, int32_t *vw) {
    for (int32_t s = 0; s < count; ++s, x += x_step, vw += out) {
        int32_t u = 0;
        for (; u + 4 <= out; u += 4) {
            int32_t a[4];
            tvc_dot4_s16(w + u * in, in, x, a);
            vw[u] = tvc_pre(a[0], shift);
            vw[u + 1] = tvc_pre(a[1], shift);
            vw[u + 2] = tvc_pre(a[2], shift);
            vw[u + 3] = tvc_pre(a[3], shift);
        }
        for (; u < out; u += 2) {
            int32_t a0, a1;
            const int32_t pair = u + 1 < out;
            tvc_dot2_s16(w + u * in, w + (u + pair) * in, x, in, &a0, &a1);
            vw[u] = tvc_pre(a0, shift);
            if (pair) {
                vw[u + 1] = tvc_pre(a1, shift);
            }
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
    int16_t *xs = tmp + hmax; /* one input pixel, widened */                                       \
    const tvc_fastgrnn_t rnn1 = {h1, C, p->u1, p->bz1, p->bh1, p->shift_u1, p->shift_c1, p->coef1}; \
    const tvc_fastgrnn_t rnn2 = {h2, h1, p->u2, p->bz2, p->bh2, p->shift_u2, p->shift_c2, p->coef2}; \
    for (int32_t oy = 0; oy < rows; ++oy) {                                                        \
        for (int32_t ox = 0; ox < p->out_w; ++ox) {                                                \
            const T *patch = in + ((oy * p->stride_h) * p->in_w + ox * p->stride_w) * C;           \
            int32_t j0 = 0; /* columns shared with the patch to the left keep their W x */         \
            if (ox > 0 && p->stride_w < pw) {                                                      \
                j0 = pw - p->stride_w;                                                             \
                for (int32_t i = 0; i < ph; ++i) {                                                 \
                    memmove(vw1 + i * pw * h1, vw1 + (i * pw + p->stride_w) * h1,                  \
                            (size_t)(j0 * h1) * sizeof(int32_t));                                  \
                }                                                                                  \
            }                                                                                      \
            for (int32_t i = 0; i < ph; ++i) {                                                     \
                for (int32_t j = j0; j < pw; ++j) {                                                \
                    const T *x = patch + (i * p->in_w + j) * C;                                    \
                    for (int32_t c = 0; c < C; ++c) {                                              \
                        xs[c] = (int16_t)(x[c] - p->in_zp);                                        \
                    }                                                                              \
                    TVC_FN(project_s16)(p->w1, h1, C, p->shift_w1, xs, 0, 1, vw1 + (i * pw + j) * h1); \
                }                                                                                  \
            }                                                                                      \
            for (int32_t i = 0; i < ph; ++i) { /* row i sweeps left to right */                    \
                TVC_FN(fastgrnn)(&rnn1, p->sigmoid, vw1 + i * pw * h1, h1, pw, summary + i * h1, tmp); \
            }                                                                                      \
            for (int32_t j = 0; j < pw; ++j) { /* column j sweeps top to bottom */                 \
                TVC_FN(fastgrnn)(&rnn1, p->sigmoid, vw1 + j * h1, pw * h1, ph, summary + (ph + j) * h1, tmp); \
            }                                                                                      \
            TVC_FN(project_s16)(p->w2, h2, h1, p->shift_w2, summary, h1, ph + pw, vw2);                \
            T *y = out + (oy * p->out_w + ox) * p->out_c;                                          \
            for (int32_t k = 0; k < 4; ++k) {                                                      \
                const int32_t len = k < 2 ? ph : pw;                                               \
                const int32_t *first = vw2 + ((k < 2 ? 0 : ph) + ((k & 1) ? len - 1 : 0)) * h2;    \
                TVC_FN(fastgrnn)(&rnn2, p->sigmoid, first, (k & 1) ? -h2 : h2, len, state, tmp);       \
                for (int32_t u = 0; u < h2; ++u) {                                                 \
                    const int64_t q = p->out_mult                                                  \
                                          ? (int64_t)tvc_mbqm(state[u], p->out_mult, p->out_shift) + p->out_zp \
                                          : tvc_shift_round(state[u], p->out_shift);              \
                    y[k * h2 + u] = (T)tvc_clamp32(q, p->out_min, p->out_max);                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

TVC_RNN_INLINE void TVC_FN(rnnpool_body_s8)(const tvc_rnnpool_t *p, const int8_t *in, int32_t rows,
                                            int32_t *scratch, int8_t *out) {
    TVC_RNNPOOL_BODY(int8_t)
}

/* conv output rows [r0, r1) into out: the same kernel on a window of the input rows */
static inline tvc_conv_t TVC_FN(conv_rows)(const tvc_conv_t *p, int32_t r0, int32_t r1, int32_t *first_row) {
    tvc_conv_t q = *p;
    const int32_t top = r0 * p->stride_h - p->pad_t;
    const int32_t start = top > 0 ? top : 0;
    q.pad_t = start - top;
    q.in_h = p->in_h - start;
    q.out_h = r1 - r0;
    *first_row = start;
    return q;
}

/* for each RNNPool output row: slide the band (keep the rows the next patch row shares), let
 * the conv fill in the rest, run RNNPool on the band */
#define TVC_CONV_RNNPOOL_BODY(CONV_CALL)                                                           \
    const int32_t row = p->in_w * p->in_c, ph = p->patch_h, sh = p->stride_h;                     \
    int32_t have_lo = 0, have_hi = 0; /* conv rows held in the band */                            \
    for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                    \
        const int32_t lo = oy * sh, hi = lo + ph;                                                  \
        if (lo >= have_hi) {                                                                       \
            have_lo = have_hi = lo;                                                                \
        } else if (lo > have_lo) {                                                                 \
            memmove(band, band + (lo - have_lo) * row, (size_t)((have_hi - lo) * row) * sizeof(*band)); \
            have_lo = lo;                                                                          \
        }                                                                                          \
        int32_t first;                                                                             \
        const tvc_conv_t q = TVC_FN(conv_rows)(cp, have_hi, hi, &first);                               \
        CONV_CALL;                                                                                 \
        have_hi = hi;                                                                              \
        TVC_RNNPOOL_CALL;                                                                          \
    }

#endif
