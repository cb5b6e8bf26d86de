/* Fully connected: out[r][o] = sum_i (in[r][i] - in_zp) * (w[o][i] - w_zp) + bias[o]. */
#include "tvc_common.h"

/* 64 x 64 -> 128-bit unsigned product as (hi, lo) */
static void TVC_FN(mul_u64)(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
    const uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
    const uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
    const uint64_t ll = a_lo * b_lo, lh = a_lo * b_hi, hl = a_hi * b_lo, hh = a_hi * b_hi;
    const uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);
    *lo = (ll & 0xFFFFFFFFu) | (mid << 32);
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

/* round(fl(acc * mant * 2^exp)): the double product of TFLite's reference per-channel
 * FULLY_CONNECTED, rounded to 53 bits (to nearest, ties to even) and then to an integer (ties
 * away from zero), all in integers. mant < 2^53. */
int32_t TVC_FN(round_scaled_double)(int32_t acc, int64_t mant, int32_t exp) {
    if (acc == 0 || mant == 0) {
        return 0;
    }
    const int negative = acc < 0;
    const uint64_t a = negative ? (uint64_t)(-(int64_t)acc) : (uint64_t)acc;
    uint64_t hi, lo;
    TVC_FN(mul_u64)(a, (uint64_t)mant, &hi, &lo);
    int32_t bits = 0; /* bit length of the 128-bit product */
    if (hi != 0) {
        uint64_t t = hi;
        bits = 64;
        while (t) { ++bits; t >>= 1; }
    } else {
        uint64_t t = lo;
        while (t) { ++bits; t >>= 1; }
    }
    uint64_t q; /* the product rounded to at most 53 significant bits, scaled by 2^drop */
    int32_t drop = bits > 53 ? bits - 53 : 0;
    if (drop == 0) {
        q = lo;
    } else {
        /* q = product >> drop; rem = low drop bits; drop <= 32 since product < 2^85 */
        q = (lo >> drop) | (drop < 64 ? (hi << (64 - drop)) : 0);
        const uint64_t rem = lo & ((((uint64_t)1) << drop) - 1u);
        const uint64_t half = ((uint64_t)1) << (drop - 1);
        if (rem > half || (rem == half && (q & 1u))) {
            q += 1u;
        }
    }
    const int32_t s = drop + exp; /* value = q * 2^s */
    int64_t r;
    if (s >= 0) {
        r = (int64_t)(q << s);
    } else if (-s > 60) {
        r = 0;
    } else {
        r = (int64_t)((q + (((uint64_t)1) << (-s - 1))) >> (-s));
    }
    return (int32_t)(negative ? -r : r);
}

/* int16 with zero points 0 (SeeDot): the SMLALD dot product */
#define TVC_DOT_S16                                                                             \
    if (p->in_zp == 0 && p->w_zp == 0) {                                                        \
        acc = tvc_dot_s16(x, wo, p->in_dim, acc);                                               \
    } else {                                                                                    \
        for (int32_t i = 0; i < p->in_dim; ++i) {                                               \
            acc += (int64_t)(((int32_t)x[i] - p->in_zp) * ((int32_t)wo[i] - p->w_zp));           \
        }                                                                                       \
    }

/* symmetric int8 weights (every per-channel model, and ours): the DSP dot product */
#define TVC_DOT_S8                                                                              \
    if (p->w_zp == 0) {                                                                         \
        acc = tvc_dot_s8(x, wo, p->in_dim, p->in_zp, acc);                                      \
    } else {                                                                                    \
        for (int32_t i = 0; i < p->in_dim; ++i) {                                               \
            acc += ((int32_t)x[i] - p->in_zp) * ((int32_t)wo[i] - p->w_zp);                     \
        }                                                                                       \
    }

/* the accumulator of output o in the output's terms, before the clamp */
static inline int64_t tvc_dense_rq(const tvc_dense_t *p, int64_t acc, int32_t o) {
    const int32_t c = p->per_channel ? o : 0;
    if (p->requant == TVC_RQ_MULT) {
        return (int64_t)tvc_mbqm((int32_t)acc, p->mult[c], p->shift[c]) + p->out_zp;
    }
    if (p->requant == TVC_RQ_EXACT) {
        return (int64_t)TVC_FN(round_scaled_double)((int32_t)acc, p->exact_mant[c], p->exact_exp[c]) + p->out_zp;
    }
    return tvc_shift_round(acc, p->shift[0]);
}

#define TVC_DENSE_BODY(IN_T, ACC_T, DOT, O0)                                                    \
    for (int32_t r = 0; r < p->rows; ++r) {                                                     \
        const IN_T *x = in + r * p->in_dim;                                                     \
        for (int32_t o = (O0); o < p->out_dim; ++o) {                                           \
            const IN_T *wo = w + o * p->in_dim;                                                 \
            ACC_T acc = bias ? (ACC_T)bias[o] : 0;                                              \
            DOT                                                                                 \
            out[r * p->out_dim + o] = (IN_T)tvc_clamp32(tvc_dense_rq(p, (int64_t)acc, o), p->act_min, p->act_max); \
        }                                                                                       \
    }

#if defined(__ARM_FEATURE_DSP)
/* outputs o and o + 1 over one input row, each word of x extended once for both: 8 MACs per
 * three loads, six extends and four SMLADs. Out of line so that the loop has the registers. */
static TVC_NOINLINE void TVC_FN(dot2_s8)(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t n, int32_t zp,
                                     int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1];
    const int16x2_t nz = tvc_neg_zp2(zp);
    const int8_t *const end = x + (n & ~3);
    while (x < end) {
        const int32_t xv = tvc_load32(x);
        x += 4;
        const int16x2_t x02 = __sxtab16(nz, xv), x13 = tvc_sxtab16_ror8(nz, xv);
        int32_t wv = tvc_load32(w0);
        w0 += 4;
        a0 = __smlad(x02, __sxtb16(wv), __smlad(x13, tvc_sxtb16_ror8(wv), a0));
        wv = tvc_load32(w1);
        w1 += 4;
        a1 = __smlad(x02, __sxtb16(wv), __smlad(x13, tvc_sxtb16_ror8(wv), a1));
    }
    for (int32_t i = 0; i < (n & 3); ++i) {
        a0 += ((int32_t)x[i] - zp) * (int32_t)w0[i];
        a1 += ((int32_t)x[i] - zp) * (int32_t)w1[i];
    }
    acc[0] = a0;
    acc[1] = a1;
}
#endif

void TVC_FN(dense_s8)(const tvc_dense_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                      int8_t *out) {
    int32_t pairs = 0; /* outputs [0, pairs) already done two at a time */
#if defined(__ARM_FEATURE_DSP)
    if (p->w_zp == 0) {
        pairs = p->out_dim & ~1;
        for (int32_t r = 0; r < p->rows; ++r) {
            const int8_t *x = in + r * p->in_dim;
            int8_t *y = out + r * p->out_dim;
            for (int32_t o = 0; o < pairs; o += 2) {
                int32_t acc[2] = {bias ? bias[o] : 0, bias ? bias[o + 1] : 0};
                TVC_FN(dot2_s8)(x, w + o * p->in_dim, w + (o + 1) * p->in_dim, p->in_dim, p->in_zp, acc);
                y[o] = (int8_t)tvc_clamp32(tvc_dense_rq(p, acc[0], o), p->act_min, p->act_max);
                y[o + 1] = (int8_t)tvc_clamp32(tvc_dense_rq(p, acc[1], o + 1), p->act_min, p->act_max);
            }
        }
    }
#endif
    TVC_DENSE_BODY(int8_t, int32_t, TVC_DOT_S8, pairs)
}

void TVC_FN(dense_s16)(const tvc_dense_t *p, const int16_t *in, const int16_t *w, const int64_t *bias,
                       int16_t *out) {
    TVC_DENSE_BODY(int16_t, int64_t, TVC_DOT_S16, 0)
}
