/* 2-D convolution (general, grouped, depthwise, dilated), NHWC data, OHWI weights; depthwise
 * with a multiplier also has a channel-vectorized kernel on [KH][KW][C_out] weights. */
#include "tvc_common.h"

/* hot loops kept out of line, so that their registers are not shared with the caller's */
#if defined(__GNUC__)
#define TVC_NOINLINE __attribute__((noinline))
#else
#define TVC_NOINLINE
#endif

/* the requantization parameters in locals: int8 stores may alias anything, so reading them
 * through p after each store would reload every field */
typedef struct {
    int32_t kind, out_zp, lo, hi;
    const int32_t *mult, *shift;
} tvc_rq_t;

static inline tvc_rq_t tvc_rq_of(const tvc_conv_t *p) {
    const tvc_rq_t r = {p->requant, p->out_zp, p->act_min, p->act_max, p->mult, p->shift};
    return r;
}

/* in int32 throughout, as TFLite's kernels compute it (mbqm + zero point, then the clamp);
 * SeeDot's right shift as floor((floor(acc / 2^(s-1)) + 1) / 2), which cannot overflow */
static inline int8_t tvc_rq_s8(const tvc_rq_t r, int32_t acc, int32_t oc) {
    int32_t v;
    if (r.kind == TVC_RQ_MULT) {
        v = tvc_mbqm(acc, r.mult[oc], r.shift[oc]) + r.out_zp;
    } else {
        const int32_t s = r.shift[0];
        v = s > 0 ? (((acc >> (s - 1)) + 1) >> 1) : tvc_clamp32(tvc_shift_round(acc, s), INT32_MIN, INT32_MAX);
    }
    return (int8_t)(v < r.lo ? r.lo : (v > r.hi ? r.hi : v));
}

static inline int64_t tvc_conv_requant(const tvc_conv_t *p, int64_t acc, int32_t oc) {
    if (p->requant == TVC_RQ_MULT) {
        return (int64_t)tvc_mbqm((int32_t)acc, p->mult[oc], p->shift[oc]) + p->out_zp;
    }
    return tvc_shift_round(acc, p->shift[0]);
}

/* the general loop nest: valid taps per output pixel hoisted out of the channel loop, DOT
 * accumulating one tap's channels of group g */
#define TVC_CONV_LOOPS(T, ACC_T, DOT)                                                          \
    const int32_t out_per_group = p->out_c / p->groups;                                        \
    const int32_t ipg = p->in_c / p->groups;                                                   \
    for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                \
        const int32_t iy0 = oy * p->stride_h - p->pad_t;                                       \
        int32_t ky_lo, ky_hi;                                                                  \
        tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);                         \
        for (int32_t ox = 0; ox < p->out_w; ++ox) {                                            \
            const int32_t ix0 = ox * p->stride_w - p->pad_l;                                   \
            int32_t kx_lo, kx_hi;                                                              \
            tvc_tap_range(ix0, p->dil_w, p->k_w, p->in_w, &kx_lo, &kx_hi);                     \
            T *y = out + (oy * p->out_w + ox) * p->out_c;                                      \
            for (int32_t oc = 0; oc < p->out_c; ++oc) {                                        \
                const int32_t g = oc / out_per_group;                                          \
                ACC_T acc = bias ? (ACC_T)bias[oc] : 0;                                        \
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {                                   \
                    const T *xrow = in + ((iy0 + ky * p->dil_h) * p->in_w) * p->in_c + g * ipg; \
                    const T *wrow = w + ((oc * p->k_h + ky) * p->k_w) * ipg;                   \
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {                               \
                        const T *x = xrow + (ix0 + kx * p->dil_w) * p->in_c;                   \
                        const T *wk = wrow + kx * ipg;                                         \
                        DOT                                                                    \
                    }                                                                          \
                }                                                                              \
                y[oc] = (T)tvc_clamp32(tvc_conv_requant(p, acc, oc), p->act_min, p->act_max);  \
            }                                                                                  \
        }                                                                                      \
    }

#define TVC_CONV_DOT_S8 acc = tvc_dot_s8(x, wk, ipg, p->in_zp, acc);
#define TVC_CONV_DOT_PLAIN                                                                     \
    for (int32_t ic = 0; ic < ipg; ++ic) {                                                     \
        acc += (int64_t)((int32_t)x[ic] * (int32_t)wk[ic]);                                    \
    }

#if defined(__ARM_FEATURE_DSP)
/* one output pixel's patch as int16 (x - zp; 0 where the patch leaves the input), each group of
 * four reordered c0 c2 c1 c3 so that a 32-bit load pairs with SXTB16 of four weights */
static void tvc_im2col_s16(const tvc_conv_t *p, const int8_t *in, int32_t pix, int16_t *col) {
    const int32_t oy = pix / p->out_w, ox = pix % p->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
    int32_t k = 0;
    const int32_t inside = iy0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h && ix0 >= 0 &&
                           ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
    if (inside && p->dil_w == 1) { /* the whole window in the input: contiguous rows */
        const int32_t run = p->k_w * p->in_c;
        for (int32_t ky = 0; ky < p->k_h; ++ky) {
            const int8_t *row = in + ((iy0 + ky * p->dil_h) * p->in_w + ix0) * p->in_c;
            for (int32_t j = 0; j < run; ++j) {
                col[k + j] = (int16_t)((int32_t)row[j] - p->in_zp);
            }
            k += run;
        }
    }
    for (int32_t ky = 0; ky < p->k_h && !(inside && p->dil_w == 1); ++ky) {
        const int32_t iy = iy0 + ky * p->dil_h;
        for (int32_t kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ix0 + kx * p->dil_w;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                for (int32_t ic = 0; ic < p->in_c; ++ic) {
                    col[k++] = 0;
                }
                continue;
            }
            const int8_t *x = in + (iy * p->in_w + ix) * p->in_c;
            for (int32_t ic = 0; ic < p->in_c; ++ic) {
                col[k++] = (int16_t)((int32_t)x[ic] - p->in_zp);
            }
        }
    }
    for (int32_t j = 0; j + 4 <= k; j += 4) {
        const int16_t t = col[j + 1];
        col[j + 1] = col[j + 2];
        col[j + 2] = t;
    }
}

static inline int32_t tvc_load32(const void *ptr) {
    int32_t v;
    memcpy(&v, ptr, 4);
    return v;
}

static inline int8x4_t tvc_ror8(int32_t v) {
    return (int8x4_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24));
}

/* tail of a dot product past the last group of four (plain order there) */
static inline int32_t tvc_tail(const int8_t *w, const int16_t *col, int32_t from, int32_t to, int32_t acc) {
    for (int32_t k = from; k < to; ++k) {
        acc += (int32_t)w[k] * (int32_t)col[k];
    }
    return acc;
}

/* the 2x2 block's dot products over k < K4: kept out of line so that its registers hold the
 * four sums, four pointers and the words in flight without spilling to the stack */
static TVC_NOINLINE void tvc_mac_2x2(const int8_t *w0, const int8_t *w1, const int16_t *col_a,
                                     const int16_t *col_b, int32_t K4, int32_t *acc) {
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    const int16_t *const end = col_a + K4;
    while (col_a < end) {
        const int16x2_t ca02 = tvc_load32(col_a), ca13 = tvc_load32(col_a + 2);
        const int16x2_t cb02 = tvc_load32(col_b), cb13 = tvc_load32(col_b + 2);
        col_a += 4;
        col_b += 4;
        int32_t wv = tvc_load32(w0);
        w0 += 4;
        int16x2_t w02 = __sxtb16(wv), w13 = __sxtb16(tvc_ror8(wv));
        a00 = __smlad(w02, ca02, __smlad(w13, ca13, a00));
        a01 = __smlad(w02, cb02, __smlad(w13, cb13, a01));
        wv = tvc_load32(w1);
        w1 += 4;
        w02 = __sxtb16(wv);
        w13 = __sxtb16(tvc_ror8(wv));
        a10 = __smlad(w02, ca02, __smlad(w13, ca13, a10));
        a11 = __smlad(w02, cb02, __smlad(w13, cb13, a11));
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* groups == 1 on DSP cores: im2col two output pixels, then two output channels at a time:
 * 16 MACs per eight SMLADs on registers shared across the 2x2 block */
static void tvc_conv_s8_block(const tvc_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                              int16_t *scratch, int8_t *out) {
    const int32_t K = p->k_h * p->k_w * p->in_c;
    const int32_t K4 = K & ~3;
    const int32_t stride = (K + 3) & ~3;
    int16_t *col_a = scratch, *col_b = scratch + stride;
    const tvc_rq_t rq = tvc_rq_of(p);
    const int32_t pixels = p->out_h * p->out_w;
    for (int32_t pix = 0; pix < pixels; pix += 2) {
        const int32_t two = pix + 1 < pixels;
        tvc_im2col_s16(p, in, pix, col_a);
        if (two) {
            tvc_im2col_s16(p, in, pix + 1, col_b);
        }
        int8_t *ya = out + pix * p->out_c, *yb = ya + p->out_c;
        for (int32_t oc = 0; oc < p->out_c; oc += 2) {
            const int32_t pair = oc + 1 < p->out_c;
            const int8_t *w0 = w + oc * K, *w1 = pair ? w0 + K : w0;
            int32_t a00 = bias ? bias[oc] : 0, a10 = pair && bias ? bias[oc + 1] : 0;
            int32_t a01 = a00, a11 = a10;
            int32_t acc[4] = {a00, a01, a10, a11};
            tvc_mac_2x2(w0, w1, col_a, col_b, K4, acc);
            a00 = acc[0];
            a01 = acc[1];
            a10 = acc[2];
            a11 = acc[3];
            a00 = tvc_tail(w0, col_a, K4, K, a00);
            a01 = tvc_tail(w0, col_b, K4, K, a01);
            a10 = tvc_tail(w1, col_a, K4, K, a10);
            a11 = tvc_tail(w1, col_b, K4, K, a11);
            const int8_t r00 = tvc_rq_s8(rq, a00, oc), r01 = tvc_rq_s8(rq, a01, oc);
            const int8_t r10 = tvc_rq_s8(rq, a10, oc + 1), r11 = tvc_rq_s8(rq, a11, oc + 1);
            ya[oc] = r00;
            if (pair) {
                ya[oc + 1] = r10;
            }
            if (two) {
                yb[oc] = r01;
                if (pair) {
                    yb[oc + 1] = r11;
                }
            }
        }
    }
}
#endif

void TVC_FN(conv2d_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                       int16_t *scratch, int8_t *out) {
#if defined(__ARM_FEATURE_DSP)
    if (p->groups == 1 && scratch) {
        tvc_conv_s8_block(p, in, w, bias, scratch, out);
        return;
    }
#endif
    (void)scratch;
    TVC_CONV_LOOPS(int8_t, int32_t, TVC_CONV_DOT_S8)
}

typedef struct {
    int32_t x_row, x_col, w_row, w_col, zp; /* strides between taps, in bytes */
} tvc_dw_steps_t;

/* four channels' sums over a window of taps (x, w at the first valid tap), out of line so that
 * the loop keeps its pointers and sums in registers */
static TVC_NOINLINE void tvc_dw4_taps(const int8_t *x, const int8_t *w, int32_t rows, int32_t cols,
                                      const tvc_dw_steps_t *st, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if defined(__ARM_FEATURE_DSP)
    const uint32_t zp16 = (uint32_t)(uint16_t)(int16_t)st->zp;
    const int16x2_t zp2 = (int16x2_t)((zp16 << 16) | zp16);
#endif
#if defined(__ARM_FEATURE_DSP)
/* four channels from two words: x - zp exact in int16 lanes */
#define TVC_DW4_TAP(XP, WP)                                                          \
    do {                                                                             \
        const int32_t xv = tvc_load32(XP), wv = tvc_load32(WP);                      \
        const int16x2_t x02 = __ssub16(__sxtb16(xv), zp2);                           \
        const int16x2_t x13 = __ssub16(__sxtb16(tvc_ror8(xv)), zp2);                 \
        const int16x2_t w02 = __sxtb16(wv), w13 = __sxtb16(tvc_ror8(wv));            \
        a0 = __smlabb(x02, w02, a0);                                                 \
        a2 = __smlatt(x02, w02, a2);                                                 \
        a1 = __smlabb(x13, w13, a1);                                                 \
        a3 = __smlatt(x13, w13, a3);                                                 \
    } while (0)
    if (rows == 3 && cols == 3) { /* the whole 3x3 window: straight-line taps */
        const int32_t xc = st->x_col, wc = st->w_col;
        for (int32_t r = 0; r < 3; ++r, x += st->x_row, w += st->w_row) {
            TVC_DW4_TAP(x, w);
            TVC_DW4_TAP(x + xc, w + wc);
            TVC_DW4_TAP(x + 2 * xc, w + 2 * wc);
        }
        rows = 0;
    }
#endif
    for (int32_t r = 0; r < rows; ++r, x += st->x_row, w += st->w_row) {
        const int8_t *xc = x, *wc = w;
        for (int32_t c = 0; c < cols; ++c, xc += st->x_col, wc += st->w_col) {
#if defined(__ARM_FEATURE_DSP)
            TVC_DW4_TAP(xc, wc);
#else
            a0 += ((int32_t)xc[0] - st->zp) * wc[0];
            a1 += ((int32_t)xc[1] - st->zp) * wc[1];
            a2 += ((int32_t)xc[2] - st->zp) * wc[2];
            a3 += ((int32_t)xc[3] - st->zp) * wc[3];
#endif
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* depthwise: out channel oc reads input channel oc / mult; weights [KH][KW][C_out] so that a
 * run of output channels reads contiguous weights; four channels accumulate in registers */
void TVC_FN(depthwise_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w_hwc, const int32_t *bias,
                          int8_t *out) {
    const int32_t mult = p->out_c / p->in_c;
    const tvc_rq_t rq = tvc_rq_of(p);
    const tvc_dw_steps_t taps = {p->dil_h * p->in_w * p->in_c, p->dil_w * p->in_c, p->k_w * p->out_c, p->out_c,
                                 p->in_zp};
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky_lo, ky_hi;
        tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int32_t kx_lo, kx_hi;
            tvc_tap_range(ix0, p->dil_w, p->k_w, p->in_w, &kx_lo, &kx_hi);
            int8_t *y = out + (oy * p->out_w + ox) * p->out_c;
            int32_t oc = 0;
            if (mult == 1) {
                const int8_t *x0 = in + ((iy0 + ky_lo * p->dil_h) * p->in_w + ix0 + kx_lo * p->dil_w) * p->in_c;
                const int8_t *w0 = w_hwc + (ky_lo * p->k_w + kx_lo) * p->out_c;
                for (; oc + 4 <= p->out_c; oc += 4) {
                    int32_t a[4] = {bias ? bias[oc] : 0, bias ? bias[oc + 1] : 0, bias ? bias[oc + 2] : 0,
                                    bias ? bias[oc + 3] : 0};
                    tvc_dw4_taps(x0 + oc, w0 + oc, ky_hi - ky_lo, kx_hi - kx_lo, &taps, a);
                    const int8_t r0 = tvc_rq_s8(rq, a[0], oc), r1 = tvc_rq_s8(rq, a[1], oc + 1);
                    const int8_t r2 = tvc_rq_s8(rq, a[2], oc + 2), r3 = tvc_rq_s8(rq, a[3], oc + 3);
                    y[oc] = r0;
                    y[oc + 1] = r1;
                    y[oc + 2] = r2;
                    y[oc + 3] = r3;
                }
            }
            for (; oc < p->out_c; ++oc) {
                int32_t acc = bias ? bias[oc] : 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                        const int32_t x = in[(iy * p->in_w + ix0 + kx * p->dil_w) * p->in_c + oc / mult];
                        acc += (x - p->in_zp) * w_hwc[(ky * p->k_w + kx) * p->out_c + oc];
                    }
                }
                y[oc] = tvc_rq_s8(rq, acc, oc);
            }
        }
    }
}

void TVC_FN(conv2d_s16)(const tvc_conv_t *p, const int16_t *in, const int16_t *w, const int64_t *bias,
                        int16_t *out) {
    TVC_CONV_LOOPS(int16_t, int64_t, TVC_CONV_DOT_PLAIN)
}
