/* Elementwise add / sub / mul with broadcasting (up to 4-D, strides 0 where broadcast). */
#include "tvc_common.h"

/* TFLite int8 Add: common 2x-max scale, 20 bits headroom (its multipliers are never
 * negative: SRDHM without its overflow case) */
static inline int32_t tvc_add_tflite(const tvc_binary_t *p, int32_t a, int32_t b) {
    const int32_t v1 = tvc_rdbpot(tvc_srdhm_pos((int32_t)((uint32_t)(a - p->in1_zp) << p->left_shift), p->mult1), -p->shift1);
    const int32_t v2 = tvc_rdbpot(tvc_srdhm_pos((int32_t)((uint32_t)(b - p->in2_zp) << p->left_shift), p->mult2), -p->shift2);
    const int32_t v = tvc_rdbpot(tvc_srdhm_pos(v1 + p->sign2 * v2, p->mult_out), -p->shift_out) + p->out_zp;
    return v < p->act_min ? p->act_min : (v > p->act_max ? p->act_max : v);
}

static inline int32_t tvc_add_one(const tvc_binary_t *p, int32_t a, int32_t b) {
    if (p->requant == TVC_RQ_MULT) {
        return tvc_add_tflite(p, a, b);
    }
    const int64_t v = tvc_shift_round(a, p->pow2_1) + p->sign2 * tvc_shift_round(b, p->pow2_2);
    return tvc_clamp32(v, p->act_min, p->act_max);
}

static inline int32_t tvc_mul_one(const tvc_binary_t *p, int32_t a, int32_t b) {
    if (p->requant == TVC_RQ_MULT) {
        const int32_t prod = (int32_t)((int64_t)(a - p->in1_zp) * (int64_t)(b - p->in2_zp));
        return tvc_clamp32((int64_t)tvc_mbqm(prod, p->mult_out, p->shift_out) + p->out_zp,
                           p->act_min, p->act_max);
    }
    return tvc_clamp32(tvc_shift_round((int64_t)a * (int64_t)b, p->pow2_out), p->act_min, p->act_max);
}

#define TVC_BINARY_BODY(T, ONE)                                                                \
    int32_t o = 0;                                                                             \
    for (int32_t i0 = 0; i0 < p->dims[0]; ++i0) {                                              \
        for (int32_t i1 = 0; i1 < p->dims[1]; ++i1) {                                          \
            for (int32_t i2 = 0; i2 < p->dims[2]; ++i2) {                                      \
                const int32_t a0 = i0 * p->stride1[0] + i1 * p->stride1[1] + i2 * p->stride1[2]; \
                const int32_t b0 = i0 * p->stride2[0] + i1 * p->stride2[1] + i2 * p->stride2[2]; \
                for (int32_t i3 = 0; i3 < p->dims[3]; ++i3) {                                  \
                    out[o++] = (T)ONE(p, a[a0 + i3 * p->stride1[3]], b[b0 + i3 * p->stride2[3]]); \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* int8 Add on same-shape inputs, over a local copy of the parameters: an int8 store may alias
 * anything, so fields read through p would be reloaded after every element */
static void TVC_FN(add_s8_flat)(const tvc_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n) {
    const tvc_binary_t q = *p;
    for (int32_t i = 0; i < n; ++i) {
        out[i] = (int8_t)tvc_add_tflite(&q, a[i], b[i]);
    }
}

void TVC_FN(add_s8)(const tvc_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
    int32_t n = 1, flat = p->requant == TVC_RQ_MULT;
    for (int32_t k = TVC_MAX_DIMS - 1; k >= 0; --k) { /* both inputs dense, no broadcast */
        flat = flat && p->stride1[k] == n && p->stride2[k] == n;
        n *= p->dims[k];
    }
    if (flat) {
        TVC_FN(add_s8_flat)(p, a, b, out, n);
        return;
    }
    TVC_BINARY_BODY(int8_t, tvc_add_one)
}
void TVC_FN(add_s16)(const tvc_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out) { TVC_BINARY_BODY(int16_t, tvc_add_one) }
void TVC_FN(mul_s8)(const tvc_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) { TVC_BINARY_BODY(int8_t, tvc_mul_one) }
void TVC_FN(mul_s16)(const tvc_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out) { TVC_BINARY_BODY(int16_t, tvc_mul_one) }
