/* 2-D convolution (general, grouped, depthwise, dilated), NHWC data, OHWI weights; depthwise
 * with a multiplier also has a channel-vectorized kernel on [KH][KW][C_out] weights. */
#include "tvc_common.h"

/* the requantization parameters in locals: int8 stores may alias anything, so reading them
 * through p after each store would reload every field */
typedef struct {
    int32_t kind, out_zp, lo, hi;
    const int32_t *mult, *shift, *rqc;
} tvc_rq_t;

static inline tvc_rq_t tvc_rq_of(const tvc_conv_t *p) {
    const tvc_rq_t r = {p->requant, p->out_zp, p->act_min, p->act_max, p->mult, p->shift, p->rqc};
    return r;
}

/* in int32 throughout, as TFLite's kernels compute it (mbqm + zero point, then the clamp);
 * SeeDot's right shift as floor((floor(acc / 2^(s-1)) + 1) / 2), which cannot overflow */
static inline int8_t tvc_rq_s8(const tvc_rq_t r, int32_t acc, int32_t oc) {
    int32_t v;
    if (r.rqc) { /* precomputed: one multiply-accumulate, zero point included */
        v = tvc_rqc(r.rqc + 4 * oc, acc);
    } else if (r.kind == TVC_RQ_MULT) {
        v = tvc_mbqm(acc, r.mult[oc], r.shift[oc]) + r.out_zp;
    } else {
        const int32_t s = r.shift[0];
        v = s > 0 ? (((acc >> (s - 1)) + 1) >> 1) : tvc_clamp32(tvc_shift_round(acc, s), INT32_MIN, INT32_MAX);
    }
    v = v < r.lo ? r.lo : v; /* two selects, which GCC makes IT blocks rather than branches */
    v = v > r.hi ? r.hi : v;
    return (int8_t)v;
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
#define TVC_CONV_DOT_S16 acc = tvc_dot_s16(x, wk, ipg, acc);

#if defined(__ARM_FEATURE_DSP)
/* one output pixel's patch as int16 (x - zp; 0 where the patch leaves the input), each group of
 * four reordered c0 c2 c1 c3 so that a 32-bit load pairs with SXTB16 of four weights */
static void TVC_FN(im2col_s16)(const tvc_conv_t *p, const int8_t *in, int32_t pix, int16_t *col) {
    const int32_t oy = pix / p->out_w, ox = pix % p->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
    const int32_t inside = iy0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h && ix0 >= 0 &&
                           ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
    const int32_t run = p->k_w * p->in_c;
    if (inside && p->dil_w == 1 && (run & 3) == 0) {
        /* the whole window in the input as rows of whole fours: SXTAB16 gives each four's
         * (c0, c2) and (c1, c3) lanes already in the reordered layout */
        const int16x2_t nz = tvc_neg_zp2(p->in_zp);
        for (int32_t ky = 0; ky < p->k_h; ++ky) {
            const int8_t *row = in + ((iy0 + ky * p->dil_h) * p->in_w + ix0) * p->in_c;
            for (int32_t j = 0; j < run; j += 4, col += 4) {
                const int32_t v = tvc_load32(row + j);
                const int16x2_t c02 = __sxtab16(nz, v), c13 = tvc_sxtab16_ror8(nz, v);
                memcpy(col, &c02, 4);
                memcpy(col + 2, &c13, 4);
            }
        }
        return;
    }
    int32_t k = 0;
    if (inside && p->dil_w == 1) { /* the whole window in the input: contiguous rows */
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

/* the rotate as C: in the 2x2 loop below GCC allocates registers without spilling only when it
 * sees it (with tvc_sxtb16_ror8 there it spills three pointers per iteration) */
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

/* what every pixel pair of one conv shares */
typedef struct {
    const int8_t *w;
    const int32_t *bias;
    int32_t K, K4, out_c;
    tvc_rq_t rq;
} tvc_blk_t;

/* every output channel of pixels a and b (b == a when there is one pixel), two channels at a
 * time: 16 MACs per eight SMLADs on registers shared across the 2x2 block. Out of line, once
 * per pixel pair, so that the MAC loop has the registers and the call costs little per output. */
static TVC_NOINLINE void TVC_FN(conv_pixels)(const tvc_blk_t *b, const int16_t *col_a, const int16_t *col_b,
                                         int8_t *ya, int8_t *yb) {
    const int32_t K = b->K, K4 = b->K4, out_c = b->out_c;
    const tvc_rq_t rq = b->rq;
    for (int32_t oc = 0; oc < out_c; oc += 2) {
        const int32_t pair = oc + 1 < out_c;
        const int8_t *w0 = b->w + oc * K, *w1 = pair ? w0 + K : w0;
        int32_t a00 = b->bias ? b->bias[oc] : 0, a10 = pair && b->bias ? b->bias[oc + 1] : 0;
        int32_t a01 = a00, a11 = a10;
        const int16_t *ca = col_a, *cb = col_b;
        const int16_t *const end = col_a + K4;
        while (ca < end) {
            const int16x2_t ca02 = tvc_load32(ca), ca13 = tvc_load32(ca + 2);
            const int16x2_t cb02 = tvc_load32(cb), cb13 = tvc_load32(cb + 2);
            ca += 4;
            cb += 4;
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
        if (K4 < K) {
            w0 -= K4;
            w1 -= K4;
            a00 = tvc_tail(w0, col_a, K4, K, a00);
            a01 = tvc_tail(w0, col_b, K4, K, a01);
            a10 = tvc_tail(w1, col_a, K4, K, a10);
            a11 = tvc_tail(w1, col_b, K4, K, a11);
        }
        const int8_t r00 = tvc_rq_s8(rq, a00, oc), r01 = tvc_rq_s8(rq, a01, oc);
        const int8_t r10 = tvc_rq_s8(rq, a10, oc + 1), r11 = tvc_rq_s8(rq, a11, oc + 1);
        /* b's first: when there is one pixel, yb == ya and a's values land last */
        yb[oc] = r01;
        ya[oc] = r00;
        if (pair) {
            yb[oc + 1] = r11;
            ya[oc + 1] = r10;
        }
    }
}

/* groups == 1 on DSP cores: im2col two output pixels, then all output channels of the pair */
static void TVC_FN(conv_s8_block)(const tvc_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                              int16_t *scratch, int8_t *out) {
    const int32_t K = p->k_h * p->k_w * p->in_c;
    const int32_t stride = (K + 3) & ~3;
    int16_t *col_a = scratch, *col_b = scratch + stride;
    const tvc_blk_t blk = {w, bias, K, K & ~3, p->out_c, tvc_rq_of(p)};
    const int32_t pixels = p->out_h * p->out_w;
    for (int32_t pix = 0; pix < pixels; pix += 2) {
        int8_t *ya = out + pix * p->out_c;
        TVC_FN(im2col_s16)(p, in, pix, col_a);
        if (pix + 1 < pixels) {
            TVC_FN(im2col_s16)(p, in, pix + 1, col_b);
            TVC_FN(conv_pixels)(&blk, col_a, col_b, ya, ya + p->out_c);
        } else {
            TVC_FN(conv_pixels)(&blk, col_a, col_a, ya, ya);
        }
    }
}
#endif

void TVC_FN(conv2d_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                       int16_t *scratch, int8_t *out) {
#if defined(__ARM_FEATURE_DSP)
    if (p->groups == 1 && scratch) {
        TVC_FN(conv_s8_block)(p, in, w, bias, scratch, out);
        return;
    }
#endif
    (void)scratch;
    TVC_CONV_LOOPS(int8_t, int32_t, TVC_CONV_DOT_S8)
}

/* The four-lane path for channel multipliers above 1 costs ~1.5 KB of flash, so it is compiled
 * in only when the model has such a layer (its tvc_prefix.h defines TVC_DW_MULTIPLIER);
 * without it they take the plain per-channel loop, with the same results. */
#if defined(TVC_DW_MULTIPLIER)
#define TVC_DW_MULT_LANES 1
#else
#define TVC_DW_MULT_LANES 0
#endif

/* where a depthwise output row's taps lie (byte steps between taps), for channels [0, c4) */
typedef struct {
    int32_t x_row, x_col, w_row, w_col, zp, c4;
    int32_t out_w, in_w, in_c, k_w, stride_w, dil_w, pad_l, mult;
    tvc_rq_t rq;
} tvc_dw_geo_t;

/* four output channels of one tap in plain C: lane k reads input channel offset Ok (Ok = k for
 * multiplier 1, 0 0 1 1 for 2, (ch + k) / mult - ch / mult in general) */
#define TVC_DW4_GATHER(XP, WP, O1, O2, O3)                                               \
    do {                                                                                 \
        const int8_t *xp_ = (XP), *wp_ = (WP);                                           \
        a0 += ((int32_t)xp_[0] - zp) * wp_[0];                                           \
        a1 += ((int32_t)xp_[O1] - zp) * wp_[1];                                          \
        a2 += ((int32_t)xp_[O2] - zp) * wp_[2];                                          \
        a3 += ((int32_t)xp_[O3] - zp) * wp_[3];                                          \
    } while (0)

#if defined(__ARM_FEATURE_DSP)
/* four channels of one tap: x - zp formed exactly in int16 lanes by SXTAB16, one MLA each */
#define TVC_DW4_TAP(XP, WP)                                                              \
    do {                                                                                 \
        const int32_t xv = tvc_load32(XP), wv = tvc_load32(WP);                          \
        const int16x2_t x13 = tvc_sxtab16_ror8(nz, xv), w13 = tvc_sxtb16_ror8(wv);       \
        const int16x2_t x02 = __sxtab16(nz, xv), w02 = __sxtb16(wv);                     \
        a1 = __smlabb(x13, w13, a1);                                                     \
        a3 = __smlatt(x13, w13, a3);                                                     \
        a0 = __smlabb(x02, w02, a0);                                                     \
        a2 = __smlatt(x02, w02, a2);                                                     \
    } while (0)
/* channel multiplier 2: lanes read input channels c, c, c + 1, c + 1; the halfword h = (x_c,
 * x_c+1) as h | h << 8 has them in bytes 0 and 2, where SXTAB16 takes them from */
#define TVC_DW4_TAP_M2(XP, WP)                                                           \
    do {                                                                                 \
        uint16_t h_;                                                                     \
        memcpy(&h_, (XP), 2);                                                            \
        const int16x2_t xx = __sxtab16(nz, (int32_t)((uint32_t)h_ | ((uint32_t)h_ << 8))); \
        const int32_t wv = tvc_load32(WP);                                               \
        const int16x2_t w02 = __sxtb16(wv), w13 = tvc_sxtb16_ror8(wv);                   \
        a0 = __smlabb(xx, w02, a0);                                                      \
        a2 = __smlatt(xx, w02, a2);                                                      \
        a1 = __smlabb(xx, w13, a1);                                                      \
        a3 = __smlatt(xx, w13, a3);                                                      \
    } while (0)
#else
#define TVC_DW4_TAP_M2(XP, WP) TVC_DW4_GATHER(XP, WP, 0, 1, 1)
#define TVC_DW4_TAP(XP, WP) TVC_DW4_GATHER(XP, WP, 1, 2, 3)
#endif

/* one output row of a depthwise conv, four output channels at a time with the sums in
 * registers; (x, w) at the first valid kernel row (rows of them) of column 0 and channel 0.
 * Inlined into two out-of-line functions, one per value of the constant `unit` (multiplier 1
 * or not), so that each is compiled with only its own branches: register allocation of the
 * multiplier-1 taps suffers from the others' presence. */
static TVC_ALWAYS_INLINE void tvc_dw_row(const tvc_dw_geo_t *g, const int8_t *x_base, const int8_t *w_base,
                                         int32_t rows, const int32_t *bias, int8_t *y, const int32_t unit) {
    const int32_t zp = g->zp, mult = unit ? 1 : g->mult;
#if defined(__ARM_FEATURE_DSP)
    const int16x2_t nz = tvc_neg_zp2(zp);
#endif
    const tvc_rq_t rq = g->rq;
    const int32_t x_row = g->x_row, x_col = g->x_col, w_row = g->w_row, w_col = g->w_col, c4 = g->c4;
    for (int32_t ox = 0; ox < g->out_w; ++ox, y += w_col) {
        const int32_t ix0 = ox * g->stride_w - g->pad_l;
        int32_t kx_lo, kx_hi;
        tvc_tap_range(ix0, g->dil_w, g->k_w, g->in_w, &kx_lo, &kx_hi);
        const int8_t *x = x_base + (ix0 + kx_lo * g->dil_w) * g->in_c, *w = w_base + kx_lo * w_col;
        const int32_t cols = kx_hi - kx_lo;
        const int32_t full3 = rows == 3 && cols == 3 && x_col == w_col;
        for (int32_t ch = 0; ch < c4; ch += 4) {
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            if (bias) {
                a0 = bias[ch];
                a1 = bias[ch + 1];
                a2 = bias[ch + 2];
                a3 = bias[ch + 3];
            }
            const int32_t ic0 = mult == 1 ? ch : ch / mult; /* input channel of output ch */
            const int8_t *xr = x + ic0, *wr = w + ch;
            if (unit) {
                if (full3) { /* the whole 3x3 window: straight-line taps */
                    for (int32_t r = 0; r < 3; ++r, xr += x_row, wr += w_row) {
                        TVC_DW4_TAP(xr, wr);
                        TVC_DW4_TAP(xr + x_col, wr + x_col);
                        TVC_DW4_TAP(xr + 2 * x_col, wr + 2 * x_col);
                    }
                } else if (cols == 3 && x_col == w_col) { /* edge rows cut: each row straight-line */
                    for (int32_t r = 0; r < rows; ++r, xr += x_row, wr += w_row) {
                        TVC_DW4_TAP(xr, wr);
                        TVC_DW4_TAP(xr + x_col, wr + x_col);
                        TVC_DW4_TAP(xr + 2 * x_col, wr + 2 * x_col);
                    }
                } else if (cols == 2 && x_col == w_col) { /* a left or right edge of a 3-wide window */
                    for (int32_t r = 0; r < rows; ++r, xr += x_row, wr += w_row) {
                        TVC_DW4_TAP(xr, wr);
                        TVC_DW4_TAP(xr + x_col, wr + x_col);
                    }
                } else {
                    for (int32_t r = 0; r < rows; ++r, xr += x_row, wr += w_row) {
                        const int8_t *xc = xr, *wc = wr;
                        for (int32_t c = 0; c < cols; ++c, xc += x_col, wc += w_col) {
                            TVC_DW4_TAP(xc, wc);
                        }
                    }
                }
            } else if (mult == 2) {
                for (int32_t r = 0; r < rows; ++r, xr += x_row, wr += w_row) {
                    const int8_t *xc = xr, *wc = wr;
                    for (int32_t c = 0; c < cols; ++c, xc += x_col, wc += w_col) {
                        TVC_DW4_TAP_M2(xc, wc);
                    }
                }
            } else { /* any other multiplier: lane k reads input channel (ch + k) / mult */
                const int32_t o1 = (ch + 1) / mult - ic0, o2 = (ch + 2) / mult - ic0, o3 = (ch + 3) / mult - ic0;
                for (int32_t r = 0; r < rows; ++r, xr += x_row, wr += w_row) {
                    const int8_t *xc = xr, *wc = wr;
                    for (int32_t c = 0; c < cols; ++c, xc += x_col, wc += w_col) {
                        TVC_DW4_GATHER(xc, wc, o1, o2, o3);
                    }
                }
            }
            const int8_t r0 = tvc_rq_s8(rq, a0, ch), r1 = tvc_rq_s8(rq, a1, ch + 1);
            const int8_t r2 = tvc_rq_s8(rq, a2, ch + 2), r3 = tvc_rq_s8(rq, a3, ch + 3);
            y[ch] = r0;
            y[ch + 1] = r1;
            y[ch + 2] = r2;
            y[ch + 3] = r3;
        }
    }
}

static TVC_NOINLINE void TVC_FN(dw_row_s8)(const tvc_dw_geo_t *g, const int8_t *x_base, const int8_t *w_base,
                                           int32_t rows, const int32_t *bias, int8_t *y) {
    tvc_dw_row(g, x_base, w_base, rows, bias, y, 1);
}

#if defined(TVC_DW_MULTIPLIER)
static TVC_NOINLINE void TVC_FN(dw_row_mult_s8)(const tvc_dw_geo_t *g, const int8_t *x_base,
                                                const int8_t *w_base, int32_t rows, const int32_t *bias,
                                                int8_t *y) {
    tvc_dw_row(g, x_base, w_base, rows, bias, y, 0);
}
#endif

/* depthwise: out channel oc reads input channel oc / mult; weights [KH][KW][C_out] so that a
 * run of output channels reads contiguous weights */
void TVC_FN(depthwise_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w_hwc, const int32_t *bias,
                          int8_t *out) {
    const int32_t mult = p->out_c / p->in_c;
    const tvc_dw_geo_t g = {p->dil_h * p->in_w * p->in_c,
                            p->dil_w * p->in_c,
                            p->k_w * p->out_c,
                            p->out_c,
                            p->in_zp,
                            mult == 1 || TVC_DW_MULT_LANES ? p->out_c & ~3 : 0,
                            p->out_w,
                            p->in_w,
                            p->in_c,
                            p->k_w,
                            p->stride_w,
                            p->dil_w,
                            p->pad_l,
                            mult,
                            tvc_rq_of(p)};
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky_lo, ky_hi;
        tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);
        int8_t *y_row = out + oy * p->out_w * p->out_c;
        if (g.c4 > 0) {
            const int8_t *x0 = in + (iy0 + ky_lo * p->dil_h) * p->in_w * p->in_c;
            const int8_t *w0 = w_hwc + ky_lo * p->k_w * p->out_c;
            if (mult == 1) {
                TVC_FN(dw_row_s8)(&g, x0, w0, ky_hi - ky_lo, bias, y_row);
            }
#if defined(TVC_DW_MULTIPLIER)
            else {
                TVC_FN(dw_row_mult_s8)(&g, x0, w0, ky_hi - ky_lo, bias, y_row);
            }
#endif
        }
        if (g.c4 == p->out_c) {
            continue;
        }
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int32_t kx_lo, kx_hi;
            tvc_tap_range(ix0, p->dil_w, p->k_w, p->in_w, &kx_lo, &kx_hi);
            int8_t *y = y_row + ox * p->out_c;
            for (int32_t oc = g.c4; oc < p->out_c; ++oc) {
                int32_t acc = bias ? bias[oc] : 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                        const int32_t x = in[(iy * p->in_w + ix0 + kx * p->dil_w) * p->in_c + oc / mult];
                        acc += (x - p->in_zp) * w_hwc[(ky * p->k_w + kx) * p->out_c + oc];
                    }
                }
                y[oc] = tvc_rq_s8(g.rq, acc, oc);
            }
        }
    }
}

/* int16 depthwise (SeeDot: zero points 0), weights [KH][KW][C_out] as for int8: out channel oc
 * reads input channel oc / mult; two channels per pass when mult is 1 (adjacent in input and
 * weights), each with its 64-bit sum (SMLALBB/SMLALTT on Arm) */
void TVC_FN(depthwise_s16)(const tvc_conv_t *p, const int16_t *in, const int16_t *w_hwc, const int64_t *bias,
                           int16_t *out) {
    const int32_t mult = p->out_c / p->in_c;
    const int32_t x_row = p->dil_h * p->in_w * p->in_c, x_col = p->dil_w * p->in_c;
    const int32_t w_row = p->k_w * p->out_c, w_col = p->out_c;
    const int32_t pairs = mult == 1 ? p->out_c & ~1 : 0;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky_lo, ky_hi;
        tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int32_t kx_lo, kx_hi;
            tvc_tap_range(ix0, p->dil_w, p->k_w, p->in_w, &kx_lo, &kx_hi);
            const int16_t *x0 = in + ((iy0 + ky_lo * p->dil_h) * p->in_w + ix0 + kx_lo * p->dil_w) * p->in_c;
            const int16_t *w0 = w_hwc + (ky_lo * p->k_w + kx_lo) * p->out_c;
            int16_t *y = out + (oy * p->out_w + ox) * p->out_c;
            int32_t oc = 0;
            for (; oc < pairs; oc += 2) {
                int64_t a0 = bias ? bias[oc] : 0, a1 = bias ? bias[oc + 1] : 0;
                const int16_t *xr = x0 + oc, *wr = w0 + oc;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky, xr += x_row, wr += w_row) {
                    const int16_t *xc = xr, *wc = wr;
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx, xc += x_col, wc += w_col) {
                        a0 += (int64_t)((int32_t)xc[0] * (int32_t)wc[0]);
                        a1 += (int64_t)((int32_t)xc[1] * (int32_t)wc[1]);
                    }
                }
                y[oc] = (int16_t)tvc_clamp32(tvc_conv_requant(p, a0, oc), p->act_min, p->act_max);
                y[oc + 1] = (int16_t)tvc_clamp32(tvc_conv_requant(p, a1, oc + 1), p->act_min, p->act_max);
            }
            for (; oc < p->out_c; ++oc) {
                int64_t acc = bias ? bias[oc] : 0;
                const int16_t *xr = x0 + oc / mult, *wr = w0 + oc;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky, xr += x_row, wr += w_row) {
                    const int16_t *xc = xr, *wc = wr;
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx, xc += x_col, wc += w_col) {
                        acc += (int64_t)((int32_t)xc[0] * (int32_t)wc[0]);
                    }
                }
                y[oc] = (int16_t)tvc_clamp32(tvc_conv_requant(p, acc, oc), p->act_min, p->act_max);
            }
        }
    }
}

#if defined(__ARM_FEATURE_DSP)
/* one output pixel of an int16 conv (groups 1, dil_w 1), two output channels at a time: each
 * kernel row's taps are one contiguous run of input and of weights, each input word loaded
 * once for both channels, two MACs per SMLALD into 64-bit sums. Out of line, once per pixel. */
static TVC_NOINLINE void TVC_FN(conv16_pixel)(const tvc_conv_t *p, const int16_t *in, const int16_t *w,
                                          const int64_t *bias, int32_t oy, int32_t ox, int16_t *y) {
    const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
    int32_t ky_lo, ky_hi, kx_lo, kx_hi;
    tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);
    tvc_tap_range(ix0, 1, p->k_w, p->in_w, &kx_lo, &kx_hi);
    const int32_t run = (kx_hi - kx_lo) * p->in_c, run4 = run & ~3;
    const int32_t K = p->k_h * p->k_w * p->in_c, w_row = p->k_w * p->in_c, x_row = p->dil_h * p->in_w * p->in_c;
    const int16_t *x0 = in + ((iy0 + ky_lo * p->dil_h) * p->in_w + ix0 + kx_lo) * p->in_c;
    for (int32_t oc = 0; oc < p->out_c; oc += 2) {
        const int32_t pair = oc + 1 < p->out_c;
        const int16_t *w0 = w + oc * K + (ky_lo * p->k_w + kx_lo) * p->in_c, *w1 = pair ? w0 + K : w0;
        int64_t a0 = bias ? bias[oc] : 0, a1 = pair && bias ? bias[oc + 1] : 0;
        const int16_t *xr = x0;
        for (int32_t ky = ky_lo; ky < ky_hi; ++ky, xr += x_row, w0 += w_row, w1 += w_row) {
            int32_t i = 0;
            for (; i < run4; i += 4) {
                const int32_t xa = tvc_load32(xr + i), xb = tvc_load32(xr + i + 2);
                a0 = __smlald(xa, tvc_load32(w0 + i), a0);
                a1 = __smlald(xa, tvc_load32(w1 + i), a1);
                a0 = __smlald(xb, tvc_load32(w0 + i + 2), a0);
                a1 = __smlald(xb, tvc_load32(w1 + i + 2), a1);
            }
            for (; i < run; ++i) {
                a0 += (int64_t)((int32_t)xr[i] * (int32_t)w0[i]);
                a1 += (int64_t)((int32_t)xr[i] * (int32_t)w1[i]);
            }
        }
        y[oc] = (int16_t)tvc_clamp32(tvc_conv_requant(p, a0, oc), p->act_min, p->act_max);
        if (pair) {
            y[oc + 1] = (int16_t)tvc_clamp32(tvc_conv_requant(p, a1, oc + 1), p->act_min, p->act_max);
        }
    }
}
#endif

void TVC_FN(conv2d_s16)(const tvc_conv_t *p, const int16_t *in, const int16_t *w, const int64_t *bias,
                        int16_t *out) {
#if defined(__ARM_FEATURE_DSP)
    if (p->groups == 1 && p->dil_w == 1) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                TVC_FN(conv16_pixel)(p, in, w, bias, oy, ox, out + (oy * p->out_w + ox) * p->out_c);
            }
        }
        return;
    }
#endif
    TVC_CONV_LOOPS(int16_t, int64_t, TVC_CONV_DOT_S16)
}
