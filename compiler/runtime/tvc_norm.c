/* L2 normalization over the last (channel) axis, with an optional per-channel scale.
 * int8 affine: TFLite's L2Normalization into Q7 (1/sqrt by gemmlowp's Newton-Raphson), then one
 * per-channel requantization of that value times the scale's code. SeeDot int8/int16: an exact
 * integer square root of the sum of squares (16 extra bits), one rounded division per value. */
#include "tvc_common.h"

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent */
static inline int32_t TVC_FN(sat_pot)(int32_t x, int e) {
    const int32_t threshold = (int32_t)((1u << (31 - e)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << e);
}

/* TFLite GetInvSqrtQuantizedMultiplierExp(acc, reverse_shift = -1): 1/sqrt(acc) as a
 * multiplier and a (left) shift, five Newton-Raphson steps in gemmlowp's F3 */
static void TVC_FN(inv_sqrt)(int32_t acc, int32_t *mult, int32_t *shift) {
    if (acc <= 1) {
        *mult = INT32_MAX;
        *shift = 0;
        return;
    }
    int32_t s = 11;
    while (acc >= (1 << 29)) {
        acc /= 4;
        ++s;
    }
    int32_t lz = 0;
    for (uint32_t v = (uint32_t)acc; !(v & 0x80000000u); v <<= 1) {
        ++lz;
    }
    const int32_t pairs = (lz - 1) / 2 - 1;
    s -= pairs;
    acc = (int32_t)((uint32_t)acc << (2 * pairs));
    const int32_t half_input = tvc_rdbpot(acc >> 1, 1);
    const int32_t half_three = (1 << 28) + (1 << 27);
    int32_t r = 1 << 28;
    for (int i = 0; i < 5; ++i) {
        const int32_t r3 = TVC_FN(sat_pot)(tvc_srdhm(tvc_srdhm(r, r), r), 6);
        const uint32_t d = (uint32_t)tvc_srdhm(half_three, r) - (uint32_t)tvc_srdhm(half_input, r3);
        r = TVC_FN(sat_pot)((int32_t)d, 3);
    }
    r = tvc_srdhm(r, 1518500250); /* sqrt(2) / 2 in F0 */
    if (s < 0) {
        r = (int32_t)((uint32_t)r << -s);
        s = 0;
    }
    *mult = r;
    *shift = -s;
}

void TVC_FN(l2_norm_s8)(const tvc_l2norm_t *p, const int8_t *in, int8_t *out) {
    for (int32_t row = 0; row < p->rows; ++row) {
        const int8_t *x = in + row * p->depth;
        int8_t *y = out + row * p->depth;
        int32_t acc = 0;
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t v = x[c] - p->in_zp;
            acc += v * v;
        }
        int32_t mult, shift;
        TVC_FN(inv_sqrt)(acc, &mult, &shift);
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t q7 = tvc_clamp32(tvc_mbqm(x[c] - p->in_zp, mult, shift + 7), -128, 127);
            const int32_t v = tvc_mbqm(q7 * p->weights[c], p->mult[c], p->shift[c]) + p->out_zp;
            y[c] = (int8_t)tvc_clamp32(v, p->act_min, p->act_max);
        }
    }
}

/* floor(sqrt(x)), bit by bit */
static uint64_t TVC_FN(isqrt64)(uint64_t x) {
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > x) {
        bit >>= 2;
    }
    while (bit) {
        if (x >= r + bit) {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

#define TVC_L2NORM_POW2_BODY(T)                                                                \
    for (int32_t row = 0; row < p->rows; ++row) {                                             \
        const T *x = in + row * p->depth;                                                     \
        T *y = out + row * p->depth;                                                          \
        int64_t acc = 0;                                                                      \
        for (int32_t c = 0; c < p->depth; ++c) {                                              \
            acc += (int64_t)x[c] * x[c];                                                      \
        }                                                                                     \
        uint64_t root = TVC_FN(isqrt64)((uint64_t)acc << 16);                                  \
        const int64_t den = (int64_t)(root ? root : 1) * (p->pow2_shift < 0 ? (int64_t)1 << -p->pow2_shift : 1); \
        const int64_t up = p->pow2_shift > 0 ? (int64_t)1 << p->pow2_shift : 1;               \
        for (int32_t c = 0; c < p->depth; ++c) {                                              \
            const int64_t num = (int64_t)x[c] * p->weights[c] * up;                           \
            const int64_t q = num >= 0 ? (num + den / 2) / den : -((-num + den / 2) / den);   \
            y[c] = (T)tvc_clamp32(q, p->act_min, p->act_max);                                 \
        }                                                                                     \
    }

void TVC_FN(l2_norm_pow2_s8)(const tvc_l2norm_t *p, const int8_t *in, int8_t *out) {
    TVC_L2NORM_POW2_BODY(int8_t)
}

void TVC_FN(l2_norm_pow2_s16)(const tvc_l2norm_t *p, const int16_t *in, int16_t *out) {
    TVC_L2NORM_POW2_BODY(int16_t)
}
