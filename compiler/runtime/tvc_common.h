/* tvc portable kernels: shared definitions.
 *
 * Integer arithmetic identical to tvc's reference interpreter (and, for affine int8, to TFLite's
 * reference kernels): int32 accumulation of int8 products, TFLite's MultiplyByQuantizedMultiplier
 * (double rounding), gemmlowp fixed point for softmax; SeeDot-style power-of-two requantization
 * for tensors with exponents. C99, no allocation, no floating point.
 *
 * Every kernel name, and every out-of-line static helper, goes through TVC_FN so that each
 * generated model carries its own copy (tvc_prefix.h, written beside these files, sets the
 * model's prefix) and the report attributes all of its code to the model by symbol prefix.
 */
#ifndef TVC_COMMON_H
#define TVC_COMMON_H

#include <stdint.h>
#include <string.h>

#include "tvc_prefix.h"

#ifndef TVC_FN
#define TVC_FN(name) tvc_##name
#endif

#define TVC_MAX_DIMS 4

#if defined(__GNUC__) || defined(__clang__)
#define TVC_ALIGN(n) __attribute__((aligned(n)))
#define TVC_SECTION(name) __attribute__((section(name)))
#else
#define TVC_ALIGN(n)
#define TVC_SECTION(name)
#endif

/* hot loops kept out of line, so that their registers are not shared with the caller's; bodies
 * specialized by a constant argument always inlined into their out-of-line callers */
#if defined(__GNUC__)
#define TVC_NOINLINE __attribute__((noinline))
#define TVC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TVC_NOINLINE
#define TVC_ALWAYS_INLINE inline
#endif

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* requantization of a wide accumulator to the output type */
enum tvc_requant {
    TVC_RQ_MULT = 0,   /* TFLite: multiplier + shift per output channel (or one for all) */
    TVC_RQ_POW2 = 1,   /* SeeDot: one rounding arithmetic right shift (or exact left shift) */
    TVC_RQ_EXACT = 2   /* TFLite per-channel FULLY_CONNECTED: round(fl(acc * mant * 2^exp)) */
};

static inline int32_t tvc_clamp32(int64_t v, int32_t lo, int32_t hi) {
    return (int32_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* gemmlowp SaturatingRoundingDoublingHighMul */
static inline int32_t tvc_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    /* gemmlowp's (ab + nudge) / 2^31, truncating, with nudge = 2^30 or 1 - 2^30 by the sign
     * of ab, equals floor((ab + 2^30) / 2^31) for every ab: one SMULL, an add and a shift */
    const int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp RoundingDivideByPOT: x / 2^e, ties away from zero */
static inline int32_t tvc_rdbpot(int32_t x, int e) {
    int32_t mask = (int32_t)((((uint32_t)1) << e) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* SRDHM by a multiplier that is never negative (TFLite's are in [2^30, 2^31) or 0): its one
 * overflow, both operands INT32_MIN, cannot occur */
static inline int32_t tvc_srdhm_pos(int32_t a, int32_t mult) {
    int64_t ab = (int64_t)1 << 30; /* the rounding term first: one SMLAL on Arm */
    ab += (int64_t)a * (int64_t)mult;
    return (int32_t)(ab >> 31);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding). The rounding right shift, ties away
 * from zero, as floor((t + 2^(e-1)) / 2^e) with t = h - 1 for negative h: an arithmetic shift
 * plus the last bit shifted out, no mask or compare. h is never INT32_MIN (|mult| < 2^31), so
 * t cannot wrap; checked equal to gemmlowp's RoundingDivideByPOT on 5e7 random and edge cases. */
static inline int32_t tvc_mbqm(int32_t x, int32_t mult, int32_t shift) {
    if (shift > 0) {
        x = (int32_t)((uint32_t)x << shift);
    }
    const int32_t h = tvc_srdhm_pos(x, mult);
    if (shift >= 0) {
        return h;
    }
    const int32_t t = h + (h >> 31);
    return (t >> -shift) + ((t >> (-shift - 1)) & 1);
}

/* TFLite's requantization plus the output zero point, precomputed per output channel at
 * compile time where the shift is a right shift by e in 1..22: with
 *     add = 2^30 + 2^(30+e) + zp * 2^(31+e),
 *     mbqm(acc, mult, -e) + zp == hi32(acc * mult + add - [acc < 0] * 2^31) >> (e - 1)
 * exactly (both roundings are floors of one sum; derivation in compiler/ir/ops/conv.py). One
 * SMLAL instead of MultiplyByQuantizedMultiplier's two rounding steps. c: mult, e - 1, and add
 * as two words (low, high). */
static inline int32_t tvc_rqc(const int32_t *c, int32_t acc) {
    int64_t v = (int64_t)(((uint64_t)(uint32_t)c[3] << 32) | (uint32_t)c[2]);
    v += (int64_t)acc * c[0];
    v -= (int64_t)((uint32_t)acc >> 31) << 31;
    return (int32_t)(v >> 32) >> c[1];
}

/* SeeDot: v * 2^-shift, rounding half up for right shifts */
static inline int64_t tvc_shift_round(int64_t v, int32_t shift) {
    if (shift > 0) {
        return (v + ((int64_t)1 << (shift - 1))) >> shift;
    }
    return (int64_t)((uint64_t)v << (-shift));
}

int32_t TVC_FN(round_scaled_double)(int32_t acc, int64_t mant, int32_t exp);

/* C division truncating toward zero, rounded half away from zero */
static inline int32_t tvc_div_round(int32_t num, int32_t den) {
    return num > 0 ? (num + den / 2) / den : (num - den / 2) / den;
}

#if defined(__ARM_FEATURE_DSP)
/* SXTB16 of v rotated right by 8 (bytes 1 and 3) and SXTAB16 likewise: one instruction each,
 * where GCC emits a separate rotate for __sxtb16((v >> 8) | (v << 24)) */
static inline int16x2_t tvc_sxtb16_ror8(int32_t v) {
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

static inline int16x2_t tvc_sxtab16_ror8(int16x2_t a, int32_t v) {
    int16x2_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}

/* -zp in both int16 lanes: SXTAB16 with it forms x - zp exactly (|x - zp| <= 255) */
static inline int16x2_t tvc_neg_zp2(int32_t zp) {
    const uint32_t nz16 = (uint32_t)(uint16_t)(int16_t)(-zp);
    return (int16x2_t)((nz16 << 16) | nz16);
}
#endif

#if defined(__ARM_FEATURE_DSP)
/* LDRD with post-increment: two words (4-byte aligned) into A and B, P advanced by 8 bytes.
 * GCC splits 64-bit loads into two LDRs; this keeps the loop at one load per two words. */
typedef struct {
    int32_t v[2];
} tvc_pair_t;
#define TVC_LDRD_INC(P, A, B)                                                              \
    __asm__("ldrd %0, %1, [%2], #8" : "=r"(A), "=r"(B), "+r"(P) : "m"(*(const tvc_pair_t *)(const void *)(P)))
#endif

static inline int32_t tvc_load32(const void *ptr) {
    int32_t v;
    memcpy(&v, ptr, 4);
    return v;
}

/* sum_i (x[i] - zp) * w[i] + acc over int8 vectors. With the DSP extension: 4 MACs per two
 * SMLADs, x - zp formed exactly in int16 (SADD16), so the result equals the plain loop's. */
static inline int32_t tvc_dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t zp, int32_t acc) {
    int32_t i = 0;
#if defined(__ARM_FEATURE_DSP)
    const int16x2_t nz = tvc_neg_zp2(zp);
    for (; i + 4 <= n; i += 4) {
        const int32_t xv = tvc_load32(x + i), wv = tvc_load32(w + i);
        acc = __smlad(__sxtab16(nz, xv), __sxtb16(wv), acc);
        acc = __smlad(tvc_sxtab16_ror8(nz, xv), tvc_sxtb16_ror8(wv), acc);
    }
#endif
    for (; i < n; ++i) {
        acc += ((int32_t)x[i] - zp) * (int32_t)w[i];
    }
    return acc;
}

/* sum_i x[i] * w[i] + acc over int16 vectors (zero points 0, as SeeDot's are), in int64. With
 * the DSP extension: two MACs per SMLALD, whose 64-bit accumulation equals the plain loop's. */
static inline int64_t tvc_dot_s16(const int16_t *x, const int16_t *w, int32_t n, int64_t acc) {
    int32_t i = 0;
#if defined(__ARM_FEATURE_DSP)
    for (; i + 4 <= n; i += 4) {
        acc = __smlald(tvc_load32(x + i), tvc_load32(w + i), acc);
        acc = __smlald(tvc_load32(x + i + 2), tvc_load32(w + i + 2), acc);
    }
    if (i + 2 <= n) {
        acc = __smlald(tvc_load32(x + i), tvc_load32(w + i), acc);
        i += 2;
    }
#endif
    for (; i < n; ++i) {
        acc += (int64_t)((int32_t)x[i] * (int32_t)w[i]);
    }
    return acc;
}

/* first and one-past-last kernel tap whose input row/column lies inside [0, size) */
static inline void tvc_tap_range(int32_t origin, int32_t dil, int32_t taps, int32_t size, int32_t *lo,
                                 int32_t *hi) {
    int32_t a = origin < 0 ? (-origin + dil - 1) / dil : 0;
    int32_t b = (size - origin + dil - 1) / dil;
    *lo = a;
    *hi = b < taps ? b : taps;
}

typedef struct {
    int32_t in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_t, pad_l, groups;
    int32_t in_zp, out_zp, act_min, act_max;
    int32_t requant;
    const int32_t *mult;  /* TVC_RQ_MULT: per output channel */
    const int32_t *shift; /* TVC_RQ_MULT: per output channel; TVC_RQ_POW2: shift[0] */
    const int32_t *rqc;   /* TVC_RQ_MULT with every shift in -22..-1: tvc_rqc's four words per
                             output channel, computed at compile time (else 0) */
} tvc_conv_t;

typedef struct {
    int32_t rows, in_dim, out_dim;
    int32_t in_zp, w_zp, out_zp, act_min, act_max;
    int32_t requant;
    int32_t per_channel;
    const int32_t *mult;
    const int32_t *shift;
    const int64_t *exact_mant; /* TVC_RQ_EXACT: the double scale, per channel, as mant * 2^exp */
    const int32_t *exact_exp;
} tvc_dense_t;

typedef struct {
    int32_t in_h, in_w, c, out_h, out_w, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_t, pad_l;
    int32_t act_min, act_max;
} tvc_pool_t;

typedef struct {
    int32_t batch, h, w, c;
    int32_t in_zp, out_zp, mult, shift, act_min, act_max;
} tvc_mean_t;

/* elementwise binary with broadcasting: out dims and per-input strides (0 = broadcast) */
typedef struct {
    int32_t dims[TVC_MAX_DIMS];
    int32_t stride1[TVC_MAX_DIMS], stride2[TVC_MAX_DIMS];
    int32_t in1_zp, in2_zp, out_zp, act_min, act_max;
    int32_t requant;
    int32_t left_shift, mult1, shift1, mult2, shift2, mult_out, shift_out; /* TFLite add/mul */
    int32_t pow2_1, pow2_2, pow2_out;                                     /* SeeDot shifts */
    int32_t sign2;                                                        /* -1 for sub */
} tvc_binary_t;

typedef struct {
    int32_t rows, depth;
    int32_t mult, left_shift, diff_min; /* TFLite int8 */
    int32_t out_shift;                  /* SeeDot: output exponent (negated) */
    const int32_t *exp_table;           /* SeeDot: exp table of the input codes */
    int32_t table_bits;
} tvc_softmax_t;

/* strided copy, up to 4-D. gather: out[i] = in[offset + sum(idx_k * strides_k)] (slice, split,
 * transpose); scatter: out[offset + sum(idx_k * strides_k)] = in[i] (pad, concat) */
typedef struct {
    int32_t dims[TVC_MAX_DIMS];
    int32_t strides[TVC_MAX_DIMS];
    int32_t offset;
} tvc_strided_t;

/* L2 normalization over channels (tvc_norm.c): affine int8 (TFLite, then per-channel scale) or
 * SeeDot (pow2_shift: y = x w 2^k / sqrt(sum x^2 2^16)) */
typedef struct {
    int32_t rows, depth;
    int32_t in_zp, out_zp, act_min, act_max;
    int32_t pow2_shift;
    const int16_t *weights; /* the scale's codes per channel (1 without a scale) */
    const int32_t *mult;    /* affine: per channel */
    const int32_t *shift;
} tvc_l2norm_t;

/* bilinear resize (tvc_resize.c): input/output ratio per axis in Q10, pixel-centre coordinates */
typedef struct {
    int32_t in_h, in_w, c, out_h, out_w;
    int32_t scale_h, scale_w, half_pixel;
} tvc_resize_t;

typedef struct {
    int32_t count, in_zp, out_zp, mult, shift, act_min, act_max;
    int32_t requant; /* TVC_RQ_MULT or TVC_RQ_POW2 (shift = pow2 shift) */
} tvc_requant_t;

/* RNNPool, FastGRNN cells in int16 fixed point (tvc_rnnpool.c); weights [out][in] */
typedef struct {
    int32_t in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t patch_h, patch_w, stride_h, stride_w, hidden1, hidden2;
    int32_t shift_w1, shift_u1, shift_w2, shift_u2, shift_c1, shift_c2;
    int32_t in_zp;                  /* affine input: W1 (x - zp), W1 holding the input scale */
    int32_t out_mult, out_shift;    /* affine output: multiplier + shift; else a SeeDot shift */
    int32_t out_zp, out_min, out_max;
    const int16_t *w1, *u1, *w2, *u2;
    const int32_t *bz1, *bh1, *bz2, *bh2; /* Q11, plus the sigmoid table offset (bh: 2 bh + offset) */
    const int16_t *sigmoid;               /* 4096 Q15 entries over [-8, 8) */
    const uint16_t *coef1, *coef2;        /* zeta (1 - z) + nu, Q15, per sigmoid entry z */
} tvc_rnnpool_t;

/* kernels (see the .c files) */
/* scratch: 2 * ((k_h * k_w * in_c + 3) & ~3) int16 (DSP cores, groups == 1), else unused */
void TVC_FN(conv2d_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                       int16_t *scratch, int8_t *out);
void TVC_FN(depthwise_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w_hwc, const int32_t *bias, int8_t *out);
void TVC_FN(depthwise_s16)(const tvc_conv_t *p, const int16_t *in, const int16_t *w_hwc, const int64_t *bias,
                           int16_t *out);
void TVC_FN(conv2d_s16)(const tvc_conv_t *p, const int16_t *in, const int16_t *w, const int64_t *bias, int16_t *out);
void TVC_FN(dense_s8)(const tvc_dense_t *p, const int8_t *in, const int8_t *w, const int32_t *bias, int8_t *out);
void TVC_FN(dense_s16)(const tvc_dense_t *p, const int16_t *in, const int16_t *w, const int64_t *bias, int16_t *out);
void TVC_FN(max_pool_s8)(const tvc_pool_t *p, const int8_t *in, int8_t *out);
void TVC_FN(max_pool_s16)(const tvc_pool_t *p, const int16_t *in, int16_t *out);
void TVC_FN(avg_pool_s8)(const tvc_pool_t *p, const int8_t *in, int8_t *out);
void TVC_FN(avg_pool_s16)(const tvc_pool_t *p, const int16_t *in, int16_t *out);
void TVC_FN(mean_hw_s8)(const tvc_mean_t *p, const int8_t *in, int8_t *out);
void TVC_FN(mean_hw_s16)(const tvc_mean_t *p, const int16_t *in, int16_t *out);
void TVC_FN(row_sum_s8)(const int8_t *x, int32_t pixels, int32_t c, const int32_t *prior, int32_t *sum);
void TVC_FN(row_sum_s16)(const int16_t *x, int32_t pixels, int32_t c, const int32_t *prior, int32_t *sum);
void TVC_FN(pool_finish_avg_s8)(const int32_t *sum, int32_t c, int32_t count, int32_t act_min, int32_t act_max, int8_t *out);
void TVC_FN(pool_finish_avg_s16)(const int32_t *sum, int32_t c, int32_t count, int32_t act_min, int32_t act_max, int16_t *out);
void TVC_FN(pool_finish_mean_s8)(const tvc_mean_t *p, const int32_t *in, int8_t *out);
void TVC_FN(pool_finish_mean_s16)(const tvc_mean_t *p, const int32_t *in, int16_t *out);
void TVC_FN(add_s8)(const tvc_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void TVC_FN(add_s16)(const tvc_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out);
void TVC_FN(mul_s8)(const tvc_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void TVC_FN(mul_s16)(const tvc_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out);
/* `rows` output rows from `in` (its first row is the first patch row's top); scratch: see
 * rnnpool_scratch_bytes in compiler/ir/ops/rnnpool.py */
void TVC_FN(rnnpool_s8)(const tvc_rnnpool_t *p, const int8_t *in, int32_t rows, int32_t *scratch, int8_t *out);
void TVC_FN(rnnpool_s16)(const tvc_rnnpool_t *p, const int16_t *in, int32_t rows, int32_t *scratch, int16_t *out);
/* patch-wise: the convolution producing RNNPool's input runs band by band (band: patch_h rows
 * of its output), RNNPool one output row per band; conv_scratch as for conv2d */
void TVC_FN(conv_rnnpool_s8)(const tvc_conv_t *cp, const int8_t *in, const int8_t *w, const int32_t *bias,
                             int16_t *conv_scratch, const tvc_rnnpool_t *p, int8_t *band, int32_t *scratch,
                             int8_t *out);
void TVC_FN(conv_rnnpool_s16)(const tvc_conv_t *cp, const int16_t *in, const int16_t *w, const int64_t *bias,
                              const tvc_rnnpool_t *p, int16_t *band, int32_t *scratch, int16_t *out);
void TVC_FN(softmax_s8)(const tvc_softmax_t *p, const int8_t *in, int8_t *out);
void TVC_FN(softmax_pow2_s8)(const tvc_softmax_t *p, const int8_t *in, int8_t *out);
void TVC_FN(softmax_pow2_s16)(const tvc_softmax_t *p, const int16_t *in, int16_t *out);
void TVC_FN(lut_s8)(int32_t count, const int8_t *table, const int8_t *in, int8_t *out);
void TVC_FN(interp_s16)(int32_t count, const int32_t *table, int32_t table_bits, const int16_t *in, int16_t *out);
void TVC_FN(requant_s8)(const tvc_requant_t *p, const int8_t *in, int8_t *out);
void TVC_FN(requant_s16)(const tvc_requant_t *p, const int16_t *in, int16_t *out);
void TVC_FN(requant_u8_s8)(const tvc_requant_t *p, const uint8_t *in, int8_t *out);
void TVC_FN(requant_s8_u8)(const tvc_requant_t *p, const int8_t *in, uint8_t *out);
void TVC_FN(gather_b1)(const tvc_strided_t *p, const int8_t *in, int8_t *out);
void TVC_FN(gather_b2)(const tvc_strided_t *p, const int16_t *in, int16_t *out);
void TVC_FN(scatter_b1)(const tvc_strided_t *p, const int8_t *in, int8_t *out);
void TVC_FN(scatter_b2)(const tvc_strided_t *p, const int16_t *in, int16_t *out);
void TVC_FN(permute_last_b1)(int32_t rows, int32_t depth, const int32_t *perm, const int8_t *in, int8_t *out);
void TVC_FN(permute_last_b2)(int32_t rows, int32_t depth, const int32_t *perm, const int16_t *in, int16_t *out);
void TVC_FN(l2_norm_s8)(const tvc_l2norm_t *p, const int8_t *in, int8_t *out);
void TVC_FN(l2_norm_pow2_s8)(const tvc_l2norm_t *p, const int8_t *in, int8_t *out);
void TVC_FN(l2_norm_pow2_s16)(const tvc_l2norm_t *p, const int16_t *in, int16_t *out);
void TVC_FN(reduce_max_last_b1)(int32_t rows, int32_t depth, const int8_t *in, int8_t *out);
void TVC_FN(reduce_max_last_b2)(int32_t rows, int32_t depth, const int16_t *in, int16_t *out);
void TVC_FN(resize_bilinear_s8)(const tvc_resize_t *p, const int8_t *in, int8_t *out);
void TVC_FN(resize_bilinear_s16)(const tvc_resize_t *p, const int16_t *in, int16_t *out);
void TVC_FN(resize_nearest_b1)(int32_t in_h, int32_t in_w, int32_t c, int32_t fh, int32_t fw, const int8_t *in,
                               int8_t *out);
void TVC_FN(resize_nearest_b2)(int32_t in_h, int32_t in_w, int32_t c, int32_t fh, int32_t fw, const int16_t *in,
                               int16_t *out);
void TVC_FN(fill_b1)(int32_t count, int8_t value, int8_t *out);
void TVC_FN(fill_b2)(int32_t count, int16_t value, int16_t *out);

#endif
