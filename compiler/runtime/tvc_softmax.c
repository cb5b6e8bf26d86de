/* Softmax over the last axis. int8 affine: TFLite's reference kernel (gemmlowp fixed point,
 * output scale 1/256, zero point -128). SeeDot: exp by table, integer sum, one division. */
#include "tvc_common.h"

static int32_t TVC_FN(sat_shl)(int32_t x, int e) {
    const int32_t threshold = (int32_t)((((uint32_t)1) << (31 - e)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << e);
}

/* exp on [-1/4, 0): F0 in, F0 out */
static int32_t TVC_FN(exp_quarter)(int32_t a) {
    const int32_t constant_term = 1895147668;
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = tvc_srdhm(x, x);
    const int32_t x3 = tvc_srdhm(x2, x);
    const int32_t x4 = tvc_srdhm(x2, x2);
    const int32_t x4_over_4 = tvc_rdbpot(x4, 2);
    const int32_t poly = tvc_rdbpot(tvc_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + tvc_srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values for F5 input (5 integer bits), F0 output */
static int32_t TVC_FN(exp_negative_f5)(int32_t a) {
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242};
    const int32_t one_quarter = 1 << 24;
    const int32_t a_mod = (a & (one_quarter - 1)) - one_quarter;
    int32_t result = TVC_FN(exp_quarter)(TVC_FN(sat_shl)(a_mod, 5));
    const int32_t remainder = a_mod - a;
    for (int k = 0; k < 7; ++k) { /* exponents -2 .. 4 */
        if (remainder & (1 << (26 - 2 + k))) {
            result = tvc_srdhm(result, multipliers[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

static int32_t TVC_FN(one_over_one_plus_x)(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + tvc_srdhm(half_denominator, -1010580540);
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - tvc_srdhm(half_denominator, x);
        x = x + TVC_FN(sat_shl)(tvc_srdhm(x, one_minus), 2);
    }
    return TVC_FN(sat_shl)(x, 1);
}

static int TVC_FN(clz32)(uint32_t x) {
    int n = 32;
    while (x) {
        --n;
        x >>= 1;
    }
    return n;
}

void TVC_FN(softmax_s8)(const tvc_softmax_t *p, const int8_t *in, int8_t *out) {
    for (int32_t r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * p->depth;
        int8_t *y = out + r * p->depth;
        int32_t max_in_row = -128;
        for (int32_t c = 0; c < p->depth; ++c) {
            max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
        }
        int32_t sum_of_exps = 0; /* F12 */
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tvc_srdhm((int32_t)((uint32_t)diff << p->left_shift), p->mult);
                sum_of_exps += tvc_rdbpot(TVC_FN(exp_negative_f5)(scaled), 12);
            }
        }
        const int headroom_plus_one = TVC_FN(clz32)((uint32_t)sum_of_exps);
        const int num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (((uint32_t)1) << 31));
        const int32_t recip = TVC_FN(one_over_one_plus_x)(shifted);
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tvc_srdhm((int32_t)((uint32_t)diff << p->left_shift), p->mult);
                const int32_t e = TVC_FN(exp_negative_f5)(scaled);
                const int32_t v = tvc_rdbpot(tvc_srdhm(recip, e), num_bits_over_unit + 31 - 8) - 128;
                y[c] = (int8_t)tvc_clamp32(v, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}

#define TVC_SOFTMAX_POW2_BODY(T, LO, HI, EXP_OF)                                              \
    for (int32_t r = 0; r < p->rows; ++r) {                                                   \
        const T *x = in + r * p->depth;                                                       \
        T *y = out + r * p->depth;                                                            \
        int32_t mx = LO;                                                                      \
        for (int32_t c = 0; c < p->depth; ++c) {                                              \
            mx = x[c] > mx ? x[c] : mx;                                                       \
        }                                                                                     \
        int64_t total = 0;                                                                    \
        for (int32_t c = 0; c < p->depth; ++c) {                                              \
            total += EXP_OF(x[c] - mx);                                                       \
        }                                                                                     \
        if (total < 1) {                                                                      \
            total = 1;                                                                        \
        }                                                                                     \
        for (int32_t c = 0; c < p->depth; ++c) {                                              \
            const int64_t num = (int64_t)EXP_OF(x[c] - mx) << p->out_shift;                   \
            y[c] = (T)tvc_clamp32((num + total / 2) / total, LO, HI);                         \
        }                                                                                     \
    }

static int32_t TVC_FN(exp_s8)(const tvc_softmax_t *p, int32_t d) {
    return p->exp_table[(d < -128 ? -128 : d) + 128];
}

static int32_t TVC_FN(exp_s16)(const tvc_softmax_t *p, int32_t d) {
    const int32_t v = (d < -32768 ? -32768 : d) + 32768;
    const int32_t step_bits = 16 - p->table_bits;
    const int32_t idx = v >> step_bits, frac = v & ((1 << step_bits) - 1);
    const int64_t y = p->exp_table[idx] +
                      tvc_shift_round((int64_t)(p->exp_table[idx + 1] - p->exp_table[idx]) * frac, step_bits);
    return tvc_clamp32(y, -32768, 32767);
}

#define TVC_EXP8(d) TVC_FN(exp_s8)(p, (d))
#define TVC_EXP16(d) TVC_FN(exp_s16)(p, (d))

void TVC_FN(softmax_pow2_s8)(const tvc_softmax_t *p, const int8_t *in, int8_t *out) {
    TVC_SOFTMAX_POW2_BODY(int8_t, -128, 127, TVC_EXP8)
}

void TVC_FN(softmax_pow2_s16)(const tvc_softmax_t *p, const int16_t *in, int16_t *out) {
    TVC_SOFTMAX_POW2_BODY(int16_t, -32768, 32767, TVC_EXP16)
}
