/* tvc per-layer specialized kernels (tvc compile --optimize speed).
 *
 * Each body here is always inlined into a small function that the model's C defines per layer
 * with that layer's shape as literal constants, so GCC sees every trip count, every tap offset
 * (immediate offsets in the loads) and every requantization bound at compile time. The shared
 * kernels in tvc_conv.c take the same layers at run time (--optimize size).
 *
 * Bit-exact with the shared kernels: the same int32 sums, TFLite's requantization in its
 * precomputed form (tvc_rqc), the same clamp.
 */
#ifndef TVC_SPECIAL_H
#define TVC_SPECIAL_H

#include "tvc_common.h"

#if defined(__ARM_FEATURE_DSP)
/* SSAT #8 (arm_acle.h's __ssat trips -Wsign-conversion inside GCC 12's own macro) */
static inline uint32_t tvc_ssat8(int32_t v) {
    uint32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
}
#endif

/* two int16 lanes added / subtracted at once (SADD16 / SSUB16; lanes never overflow here) */
static inline int32_t tvc_sadd16(int32_t a, int32_t b) {
#if defined(__ARM_FEATURE_DSP)
    return __sadd16(a, b);
#else
    const int32_t lo = (int16_t)(uint16_t)(uint32_t)a + (int16_t)(uint16_t)(uint32_t)b;
    const int32_t hi = (a >> 16) + (b >> 16);
    return (int32_t)(((uint32_t)hi << 16) | (uint16_t)lo);
#endif
}

static inline int32_t tvc_ssub16(int32_t a, int32_t b) {
#if defined(__ARM_FEATURE_DSP)
    return __ssub16(a, b);
#else
    const int32_t lo = (int16_t)(uint16_t)(uint32_t)a - (int16_t)(uint16_t)(uint32_t)b;
    const int32_t hi = (a >> 16) - (b >> 16);
    return (int32_t)(((uint32_t)hi << 16) | (uint16_t)lo);
#endif
}

#if defined(__ARM_FEATURE_DSP)
/* int8 lanes of a word clamped byte by byte to [lo, hi]: SSUB8 sets GE per byte where the lane
 * is >= the bound, SEL picks; a bound at the int8 limit costs nothing (lo, hi are constants) */
static TVC_ALWAYS_INLINE int8x4_t tvc_clamp_bytes(int8x4_t b, const int32_t lo, const int32_t hi) {
    if (lo > -128) {
        const int8x4_t lo4 = (int8x4_t)((uint32_t)(uint8_t)lo * 0x01010101u);
        (void)__ssub8(b, lo4);
        b = (int8x4_t)__sel((uint8x4_t)b, (uint8x4_t)lo4);
    }
    if (hi < 127) {
        const int8x4_t hi4 = (int8x4_t)((uint32_t)(uint8_t)hi * 0x01010101u);
        (void)__ssub8(b, hi4);
        b = (int8x4_t)__sel((uint8x4_t)hi4, (uint8x4_t)b);
    }
    return b;
}
#endif

/* four adjacent output channels: requantized sums clamped to [lo, hi] and stored as one word
 * (SSAT to int8, then a byte-wise max and min on the packed word with SSUB8/SEL) */
static TVC_ALWAYS_INLINE void tvc_store4_s8(int8_t *y, int32_t v0, int32_t v1, int32_t v2, int32_t v3,
                                            const int32_t lo, const int32_t hi) {
#if defined(__ARM_FEATURE_DSP)
    const uint32_t s0 = tvc_ssat8(v0), s1 = tvc_ssat8(v1), s2 = tvc_ssat8(v2), s3 = tvc_ssat8(v3);
    const uint32_t p02 = (s0 & 0xFFFFu) | (s2 << 16); /* PKHBT */
    const uint32_t p13 = (s1 & 0xFFFFu) | (s3 << 16);
    const int8x4_t b = tvc_clamp_bytes((int8x4_t)(__uxtb16(p02) | (__uxtb16(p13) << 8)), lo, hi);
    memcpy(y, &b, 4);
#else
    y[0] = (int8_t)tvc_clamp32(v0, lo, hi);
    y[1] = (int8_t)tvc_clamp32(v1, lo, hi);
    y[2] = (int8_t)tvc_clamp32(v2, lo, hi);
    y[3] = (int8_t)tvc_clamp32(v3, lo, hi);
#endif
}

/* four channels of one depthwise tap: x as int8 NHWC; w as two words of int16 lanes, (c0, c2)
 * and (c1, c3), packed at compile time */
#if defined(__ARM_FEATURE_DSP)
#define TVC_DW4_TAP16(XP, WP)                                                             \
    do {                                                                                  \
        const int32_t xv_ = tvc_load32(XP);                                               \
        const int16x2_t x02_ = __sxtab16(nz, xv_), x13_ = tvc_sxtab16_ror8(nz, xv_);      \
        const int16x2_t w02_ = (WP)[0], w13_ = (WP)[1];                                   \
        a0 = __smlabb(x02_, w02_, a0);                                                    \
        a2 = __smlatt(x02_, w02_, a2);                                                    \
        a1 = __smlabb(x13_, w13_, a1);                                                    \
        a3 = __smlatt(x13_, w13_, a3);                                                    \
    } while (0)
#define TVC_DW_NZ(zp) const int16x2_t nz = tvc_neg_zp2(zp)
#else
#define TVC_DW4_TAP16(XP, WP)                                                             \
    do {                                                                                  \
        const int8_t *xp_ = (XP);                                                         \
        const int32_t *wp_ = (WP);                                                        \
        a0 += ((int32_t)xp_[0] - zp_) * (int16_t)(uint16_t)(uint32_t)wp_[0];              \
        a2 += ((int32_t)xp_[2] - zp_) * (wp_[0] >> 16);                                   \
        a1 += ((int32_t)xp_[1] - zp_) * (int16_t)(uint16_t)(uint32_t)wp_[1];              \
        a3 += ((int32_t)xp_[3] - zp_) * (wp_[1] >> 16);                                   \
    } while (0)
#define TVC_DW_NZ(zp) const int32_t zp_ = (zp)
#endif

/* 3x3 depthwise, multiplier 1, channels a multiple of 4: one output pixel whose whole window
 * lies in the input. x: the window's top-left tap; w: [C/4][9 taps][2 words]; rqc: tvc_rqc
 * rows. */
static TVC_ALWAYS_INLINE void tvc_dw3x3_pixel(const int8_t *x, const int32_t *w, const int32_t *bias,
                                              const int32_t *rqc, int8_t *y, const int32_t C,
                                              const int32_t XROW, const int32_t zp, const int32_t lo,
                                              const int32_t hi) {
    TVC_DW_NZ(zp);
    for (int32_t c = 0; c < C; c += 4, x += 4, w += 18, bias += 4, rqc += 16, y += 4) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
        TVC_DW4_TAP16(x, w);
        TVC_DW4_TAP16(x + C, w + 2);
        TVC_DW4_TAP16(x + 2 * C, w + 4);
        TVC_DW4_TAP16(x + XROW, w + 6);
        TVC_DW4_TAP16(x + XROW + C, w + 8);
        TVC_DW4_TAP16(x + XROW + 2 * C, w + 10);
        TVC_DW4_TAP16(x + 2 * XROW, w + 12);
        TVC_DW4_TAP16(x + 2 * XROW + C, w + 14);
        TVC_DW4_TAP16(x + 2 * XROW + 2 * C, w + 16);
        tvc_store4_s8(y, tvc_rqc(rqc, a0), tvc_rqc(rqc + 4, a1), tvc_rqc(rqc + 8, a2), tvc_rqc(rqc + 12, a3),
                      lo, hi);
    }
}

/* an output pixel at the border: only the taps inside the input (the padding's x - zp is 0) */
static TVC_NOINLINE void TVC_FN(dw3x3_border)(const int8_t *in, const int32_t *w, const int32_t *bias, const int32_t *rqc,
                                          int8_t *y, int32_t iy0, int32_t ix0, int32_t in_h, int32_t in_w,
                                          int32_t C, int32_t zp, int32_t lo, int32_t hi) {
    int32_t ky_lo, ky_hi, kx_lo, kx_hi;
    tvc_tap_range(iy0, 1, 3, in_h, &ky_lo, &ky_hi);
    tvc_tap_range(ix0, 1, 3, in_w, &kx_lo, &kx_hi);
    TVC_DW_NZ(zp);
    for (int32_t c = 0; c < C; c += 4, w += 18, bias += 4, rqc += 16, y += 4) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
        for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
            for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                TVC_DW4_TAP16(in + ((iy0 + ky) * in_w + ix0 + kx) * C + c, w + (ky * 3 + kx) * 2);
            }
        }
        tvc_store4_s8(y, tvc_rqc(rqc, a0), tvc_rqc(rqc + 4, a1), tvc_rqc(rqc + 8, a2), tvc_rqc(rqc + 12, a3),
                      lo, hi);
    }
}

typedef void (*tvc_dw_pixel_fn)(const int8_t *x, const int32_t *w, const int32_t *bias, const int32_t *rqc,
                                int8_t *y);

/* the layer: interior pixels through the layer's own pixel function, the border through the
 * shared one */
static TVC_ALWAYS_INLINE void tvc_dw3x3_layer(const int8_t *in, const int32_t *w, const int32_t *bias,
                                              const int32_t *rqc, int8_t *out, tvc_dw_pixel_fn pixel,
                                              const int32_t IN_H, const int32_t IN_W, const int32_t C,
                                              const int32_t OUT_H, const int32_t OUT_W, const int32_t S,
                                              const int32_t PAD_T, const int32_t PAD_L, const int32_t zp,
                                              const int32_t lo, const int32_t hi) {
    /* output columns whose window lies inside: ix0 = ox * S - PAD_L in [0, IN_W - 3] */
    int32_t ox_lo = (PAD_L + S - 1) / S, ox_hi = IN_W - 3 + PAD_L >= 0 ? (IN_W - 3 + PAD_L) / S + 1 : 0;
    ox_lo = ox_lo > OUT_W ? OUT_W : ox_lo;
    ox_hi = ox_hi > OUT_W ? OUT_W : (ox_hi < ox_lo ? ox_lo : ox_hi);
    for (int32_t oy = 0; oy < OUT_H; ++oy) {
        const int32_t iy0 = oy * S - PAD_T;
        int8_t *y = out + oy * OUT_W * C;
        if (iy0 < 0 || iy0 + 3 > IN_H) {
            for (int32_t ox = 0; ox < OUT_W; ++ox) {
                TVC_FN(dw3x3_border)(in, w, bias, rqc, y + ox * C, iy0, ox * S - PAD_L, IN_H, IN_W, C, zp, lo, hi);
            }
            continue;
        }
        for (int32_t ox = 0; ox < ox_lo; ++ox) {
            TVC_FN(dw3x3_border)(in, w, bias, rqc, y + ox * C, iy0, ox * S - PAD_L, IN_H, IN_W, C, zp, lo, hi);
        }
        const int8_t *x = in + (iy0 * IN_W + ox_lo * S - PAD_L) * C;
        for (int32_t ox = ox_lo; ox < ox_hi; ++ox, x += S * C) {
            pixel(x, w, bias, rqc, y + ox * C);
        }
        for (int32_t ox = ox_hi; ox < OUT_W; ++ox) {
            TVC_FN(dw3x3_border)(in, w, bias, rqc, y + ox * C, iy0, ox * S - PAD_L, IN_H, IN_W, C, zp, lo, hi);
        }
    }
}


/* --- convolution (groups 1) as int16 dot products, two pixels x two output channels --------
 *
 * The columns: each output pixel's window (x - zp; 0 in the padding) in int16, K padded to a
 * multiple of 4 with zeros, two pixels interleaved per four: words a(c0,c2) a(c1,c3)
 * b(c0,c2) b(c1,c3). The weights were packed the same way at compile time for each pair of
 * output channels: o(c0,c2) o(c1,c3) o+1(c0,c2) o+1(c1,c3), zeros past K. So the inner loop is
 * two LDRDs of columns, two of weights and eight SMLADs per 16 MACs, nothing else. */


/* element k of pixel p (0 or 1) in the interleaved columns */
static inline int32_t tvc_col_index(int32_t k, int32_t p) {
    static const int8_t lane[4] = {0, 2, 1, 3};
    return (k >> 2) * 8 + p * 4 + lane[k & 3];
}

/* one pixel's window into the columns: whole fours with SXTAB16 where the window row lies in
 * the input and C is a multiple of 4, element by element elsewhere */
static TVC_ALWAYS_INLINE void tvc_im2col16(const int8_t *in, int16_t *col, int32_t p, const int32_t oy,
                                           const int32_t ox, const int32_t IN_H, const int32_t IN_W,
                                           const int32_t C, const int32_t KH, const int32_t KW,
                                           const int32_t S, const int32_t PAD_T, const int32_t PAD_L,
                                           const int32_t K4, const int32_t zp) {
    const int32_t iy0 = oy * S - PAD_T, ix0 = ox * S - PAD_L;
    const int32_t run = KW * C;
    if ((C & 3) == 0 && ix0 >= 0 && ix0 + KW <= IN_W) { /* rows of whole fours */
#if defined(__ARM_FEATURE_DSP)
        const int16x2_t nz = tvc_neg_zp2(zp);
#endif
        int16_t *dst = col + p * 4;
        for (int32_t ky = 0; ky < KH; ++ky) {
            const int32_t iy = iy0 + ky;
            if (iy < 0 || iy >= IN_H) {
                for (int32_t j = 0; j < run; j += 4, dst += 8) {
                    memset(dst, 0, 8);
                }
                continue;
            }
            const int8_t *row = in + (iy * IN_W + ix0) * C;
            for (int32_t j = 0; j < run; j += 4, dst += 8) {
#if defined(__ARM_FEATURE_DSP)
                const int32_t v = tvc_load32(row + j);
                const int32_t v02 = __sxtab16(nz, v), v13 = tvc_sxtab16_ror8(nz, v);
                memcpy(dst, &v02, 4);
                memcpy(dst + 2, &v13, 4);
#else
                dst[0] = (int16_t)(row[j] - zp);
                dst[1] = (int16_t)(row[j + 2] - zp);
                dst[2] = (int16_t)(row[j + 1] - zp);
                dst[3] = (int16_t)(row[j + 3] - zp);
#endif
            }
        }
        return;
    }
    int32_t k = 0;
    for (int32_t ky = 0; ky < KH; ++ky) {
        const int32_t iy = iy0 + ky;
        for (int32_t kx = 0; kx < KW; ++kx) {
            const int32_t ix = ix0 + kx;
            if (iy < 0 || iy >= IN_H || ix < 0 || ix >= IN_W) {
                for (int32_t c = 0; c < C; ++c, ++k) {
                    col[tvc_col_index(k, p)] = 0;
                }
                continue;
            }
            const int8_t *x = in + (iy * IN_W + ix) * C;
            for (int32_t c = 0; c < C; ++c, ++k) {
                col[tvc_col_index(k, p)] = (int16_t)(x[c] - zp);
            }
        }
    }
    for (; k < K4 * 4; ++k) {
        col[tvc_col_index(k, p)] = 0;
    }
}

/* requantize and store two channels of one pixel (one halfword when both exist) */
static TVC_ALWAYS_INLINE void tvc_store2_s8(int8_t *y, int32_t v0, int32_t v1, const int32_t two,
                                            const int32_t lo, const int32_t hi) {
#if defined(__ARM_FEATURE_DSP)
    if (two) {
        const int8x4_t b =
            tvc_clamp_bytes((int8x4_t)((tvc_ssat8(v0) & 0xFFu) | ((tvc_ssat8(v1) & 0xFFu) << 8)), lo, hi);
        const uint16_t h = (uint16_t)(uint32_t)b;
        memcpy(y, &h, 2);
        return;
    }
#endif
    y[0] = (int8_t)tvc_clamp32(v0, lo, hi);
    if (two) {
        y[1] = (int8_t)tvc_clamp32(v1, lo, hi);
    }
}

/* two pixels (a, b) x two output channels (0, 1) over K4 fours of interleaved int16 columns
 * and packed weights, added to the four sums; returns the weights past the K4 fours. The
 * inner loop of the convolution and of Winograd's per-position products. */
static TVC_ALWAYS_INLINE const int32_t *tvc_dot2x2_16(const int16_t *col, const int32_t *w, const int32_t K4,
                                                      int32_t *pa0, int32_t *pa1, int32_t *pb0, int32_t *pb1) {
    int32_t a0 = *pa0, a1 = *pa1, b0 = *pb0, b1 = *pb1;
#if defined(__ARM_FEATURE_DSP)
    const int16_t *c = col;
    const int16_t *const end = col + 8 * K4;
    while (c < end) { /* 16 MACs: four LDRDs, eight SMLADs */
        int32_t ca02, ca13, cb02, cb13, w002, w013, w102, w113;
        TVC_LDRD_INC(c, ca02, ca13);
        TVC_LDRD_INC(c, cb02, cb13);
        TVC_LDRD_INC(w, w002, w013);
        TVC_LDRD_INC(w, w102, w113);
        a0 = __smlad(ca02, w002, a0);
        a0 = __smlad(ca13, w013, a0);
        b0 = __smlad(cb02, w002, b0);
        b0 = __smlad(cb13, w013, b0);
        a1 = __smlad(ca02, w102, a1);
        a1 = __smlad(ca13, w113, a1);
        b1 = __smlad(cb02, w102, b1);
        b1 = __smlad(cb13, w113, b1);
    }
#else
    const int16_t *c = col;
    for (int32_t k = 0; k < K4; ++k, c += 8, w += 4) {
        for (int32_t h = 0; h < 2; ++h) {
            const int32_t ca = tvc_load32(c + 2 * h), cb = tvc_load32(c + 4 + 2 * h);
            const int32_t w0 = w[h], w1 = w[2 + h];
            a0 += (int16_t)(uint16_t)(uint32_t)ca * (int16_t)(uint16_t)(uint32_t)w0 + (ca >> 16) * (w0 >> 16);
            b0 += (int16_t)(uint16_t)(uint32_t)cb * (int16_t)(uint16_t)(uint32_t)w0 + (cb >> 16) * (w0 >> 16);
            a1 += (int16_t)(uint16_t)(uint32_t)ca * (int16_t)(uint16_t)(uint32_t)w1 + (ca >> 16) * (w1 >> 16);
            b1 += (int16_t)(uint16_t)(uint32_t)cb * (int16_t)(uint16_t)(uint32_t)w1 + (cb >> 16) * (w1 >> 16);
        }
    }
#endif
    *pa0 = a0;
    *pa1 = a1;
    *pb0 = b0;
    *pb1 = b1;
    return w;
}

/* all output channels of two pixels (b == a for a lone last pixel: its stores come first) */
static TVC_ALWAYS_INLINE void tvc_conv16_pixels(const int16_t *col, const int32_t *w, const int32_t *bias,
                                                const int32_t *rqc, int8_t *ya, int8_t *yb, const int32_t OC,
                                                const int32_t K4, const int32_t lo, const int32_t hi) {
    for (int32_t oc = 0; oc < OC; oc += 2, bias += 2, rqc += 8) {
        int32_t a0 = bias[0], a1 = oc + 1 < OC ? bias[1] : 0;
        int32_t b0 = a0, b1 = a1;
        w = tvc_dot2x2_16(col, w, K4, &a0, &a1, &b0, &b1);
        const int32_t two = oc + 1 < OC;
        const int32_t rb0 = tvc_rqc(rqc, b0), rb1 = two ? tvc_rqc(rqc + 4, b1) : 0;
        const int32_t ra0 = tvc_rqc(rqc, a0), ra1 = two ? tvc_rqc(rqc + 4, a1) : 0;
        tvc_store2_s8(yb + oc, rb0, rb1, two, lo, hi);
        tvc_store2_s8(ya + oc, ra0, ra1, two, lo, hi);
    }
}

typedef void (*tvc_conv_pixels_fn)(const int16_t *col, const int32_t *w, const int32_t *bias,
                                   const int32_t *rqc, int8_t *ya, int8_t *yb);

/* the layer: columns for each pair of output pixels, then the layer's own pixel-pair function */
static TVC_ALWAYS_INLINE void tvc_conv16_layer(const int8_t *in, const int32_t *w, const int32_t *bias,
                                               const int32_t *rqc, int16_t *col, int8_t *out,
                                               tvc_conv_pixels_fn pixels, const int32_t IN_H,
                                               const int32_t IN_W, const int32_t C, const int32_t OUT_H,
                                               const int32_t OUT_W, const int32_t OC, const int32_t KH,
                                               const int32_t KW, const int32_t S, const int32_t PAD_T,
                                               const int32_t PAD_L, const int32_t K4, const int32_t zp) {
    const int32_t n = OUT_H * OUT_W;
    for (int32_t pix = 0; pix < n; pix += 2) {
        const int32_t pb = pix + 1 < n ? pix + 1 : pix;
        tvc_im2col16(in, col, 0, pix / OUT_W, pix % OUT_W, IN_H, IN_W, C, KH, KW, S, PAD_T, PAD_L, K4, zp);
        tvc_im2col16(in, col, 1, pb / OUT_W, pb % OUT_W, IN_H, IN_W, C, KH, KW, S, PAD_T, PAD_L, K4, zp);
        pixels(col, w, bias, rqc, out + pix * OC, out + pb * OC);
    }
}


/* --- fully connected as int16 dot products, four output rows at a time --------------------
 *
 * The input row once as int16 (x - zp) in fours (x0, x2) (x1, x3), zeros past K; the weights
 * packed at compile time per four output rows and per four of K: r(k0, k2) r(k1, k3) for each
 * row. Per 16 MACs: one LDRD of input, four of weights, eight SMLADs. */
static TVC_ALWAYS_INLINE void tvc_vec16(const int8_t *x, int16_t *col, const int32_t K, const int32_t K4,
                                        const int32_t zp) {
    int32_t k = 0;
#if defined(__ARM_FEATURE_DSP)
    const int16x2_t nz = tvc_neg_zp2(zp);
    for (; k + 4 <= K; k += 4) {
        const int32_t v = tvc_load32(x + k);
        const int32_t v02 = __sxtab16(nz, v), v13 = tvc_sxtab16_ror8(nz, v);
        memcpy(col + k, &v02, 4);
        memcpy(col + k + 2, &v13, 4);
    }
#endif
    for (; k < K4 * 4; ++k) {
        static const int8_t lane[4] = {0, 2, 1, 3};
        col[(k & ~3) + lane[k & 3]] = k < K ? (int16_t)(x[k] - zp) : 0;
    }
}

static TVC_ALWAYS_INLINE void tvc_dense16_row(const int16_t *col, const int32_t *w, const int32_t *bias,
                                              const int32_t *rqc, int8_t *y, const int32_t N, const int32_t K4,
                                              const int32_t lo, const int32_t hi) {
    for (int32_t o = 0; o < N; o += 4, bias += 4, rqc += 16) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
#if defined(__ARM_FEATURE_DSP)
        const int16_t *c = col;
        const int16_t *const end = col + 4 * K4;
        while (c < end) {
            int32_t x02, x13, w02, w13;
            TVC_LDRD_INC(c, x02, x13);
            TVC_LDRD_INC(w, w02, w13);
            a0 = __smlad(x13, w13, __smlad(x02, w02, a0));
            TVC_LDRD_INC(w, w02, w13);
            a1 = __smlad(x13, w13, __smlad(x02, w02, a1));
            TVC_LDRD_INC(w, w02, w13);
            a2 = __smlad(x13, w13, __smlad(x02, w02, a2));
            TVC_LDRD_INC(w, w02, w13);
            a3 = __smlad(x13, w13, __smlad(x02, w02, a3));
        }
#else
        for (int32_t k = 0; k < K4; ++k, w += 8) {
            int32_t *acc[4] = {&a0, &a1, &a2, &a3};
            for (int32_t r = 0; r < 4; ++r) {
                for (int32_t h = 0; h < 2; ++h) {
                    const int32_t xv = tvc_load32(col + 4 * k + 2 * h), wv = w[2 * r + h];
                    *acc[r] += (int16_t)(uint16_t)(uint32_t)xv * (int16_t)(uint16_t)(uint32_t)wv +
                               (xv >> 16) * (wv >> 16);
                }
            }
        }
#endif
        const int32_t r0 = tvc_rqc(rqc, a0), r1 = tvc_rqc(rqc + 4, a1);
        const int32_t r2 = tvc_rqc(rqc + 8, a2), r3 = tvc_rqc(rqc + 12, a3);
        if (o + 4 <= N) {
            tvc_store4_s8(y + o, r0, r1, r2, r3, lo, hi);
        } else { /* the last rows when N is not a multiple of 4 */
            const int32_t r[4] = {r0, r1, r2, r3};
            for (int32_t j = 0; o + j < N; ++j) {
                y[o + j] = (int8_t)tvc_clamp32(r[j], lo, hi);
            }
        }
    }
}

typedef void (*tvc_dense_row_fn)(const int16_t *col, int8_t *y);

/* the layer: each input row once into int16, then the layer's own row function */
static TVC_ALWAYS_INLINE void tvc_dense16_layer(const int8_t *x, int16_t *col, int8_t *y, tvc_dense_row_fn row,
                                                const int32_t ROWS, const int32_t K, const int32_t N,
                                                const int32_t K4, const int32_t zp) {
    for (int32_t r = 0; r < ROWS; ++r, x += K, y += N) {
        tvc_vec16(x, col, K, K4, zp);
        row(col, y);
    }
}


/* --- int8 add / sub on same-shape inputs through tables ---------------------------------------
 *
 * TFLite's Add brings each input to a common scale (a shift by 20 and a requantization per
 * input) before the output's requantization: per input, a function of one byte. Both were
 * tabulated at compile time (t1[a], t2[b], 256 int32 each, the sub's sign folded into t2), so
 * an element costs two table reads, an add and the output's precomputed requantization. */
static TVC_ALWAYS_INLINE void tvc_add_lut_s8(const int8_t *a, const int8_t *b, int8_t *y, const int32_t *t1,
                                             const int32_t *t2, const int32_t *rqc, const int32_t N,
                                             const int32_t lo, const int32_t hi) {
    int32_t i = 0;
    for (; i + 4 <= N; i += 4) {
        tvc_store4_s8(y + i, tvc_rqc(rqc, t1[a[i]] + t2[b[i]]), tvc_rqc(rqc, t1[a[i + 1]] + t2[b[i + 1]]),
                      tvc_rqc(rqc, t1[a[i + 2]] + t2[b[i + 2]]), tvc_rqc(rqc, t1[a[i + 3]] + t2[b[i + 3]]), lo,
                      hi);
    }
    for (; i < N; ++i) {
        y[i] = (int8_t)tvc_clamp32(tvc_rqc(rqc, t1[a[i]] + t2[b[i]]), lo, hi);
    }
}


/* --- Winograd F(2x2, 3x3), exact in integers -----------------------------------------------
 *
 * For stride-1 3x3 convolutions. The filter transform is scaled by 4 (G' = 2G has integer
 * entries), so U = G' g G'^T is an integer matrix per (output, input channel), |U| <= 1152,
 * within 12 bits; it was computed and packed at compile time. The input transform
 * V = B^T d B of a 4x4 tile of x - zp is a sum of four +-(x - zp) terms: |V| <= 1020, 11 bits
 * (SADD16/SSUB16 on two channels at once, no lane overflow). Per tile and output channel,
 * M = sum over input channels of U (.) V (16 products instead of 36: SMLAD on pairs of
 * channels), and A^T M A is exactly 4 times the direct 2x2 sums: shifted right by 2, plus the
 * bias, requantized as always. The compiler takes this path only where it has proven from the
 * layer's own weights that no sum leaves int32.
 *
 * v: the transformed tiles of two horizontally adjacent tiles, per position i (16) and per
 * four channels: a(c0, c2) a(c1, c3) b(c0, c2) b(c1, c3) as int16 pairs. */

/* one tile's input transform for all channels; (iy0, ix0): its top-left input pixel. Taps in
 * the padding read four zero-point bytes, which SXTAB16 turns into the 0 that x - zp is there. */
static TVC_ALWAYS_INLINE void tvc_wino_in(const int8_t *in, int16_t *v, const int32_t p, const int32_t iy0,
                                          const int32_t ix0, const int32_t IN_H, const int32_t IN_W,
                                          const int32_t C, const int32_t zp) {
    const int32_t C4 = C / 4;
    const int32_t zp4 = (int32_t)((uint32_t)(uint8_t)zp * 0x01010101u);
    int32_t ok[4][4];
    for (int32_t r = 0; r < 4; ++r) {
        for (int32_t s = 0; s < 4; ++s) {
            ok[r][s] = iy0 + r >= 0 && iy0 + r < IN_H && ix0 + s >= 0 && ix0 + s < IN_W;
        }
    }
    const int8_t *x0 = in + (iy0 * IN_W + ix0) * C;
    for (int32_t g = 0; g < C4; ++g, x0 += 4) {
        int32_t e[2][4][4]; /* [lanes][row][column]: d B, row by row */
        for (int32_t r = 0; r < 4; ++r) {
            int32_t d[2][4];
            for (int32_t s = 0; s < 4; ++s) {
                const int32_t w = ok[r][s] ? tvc_load32(x0 + (r * IN_W + s) * C) : zp4;
#if defined(__ARM_FEATURE_DSP)
                const int16x2_t nz = tvc_neg_zp2(zp);
                d[0][s] = __sxtab16(nz, w);
                d[1][s] = tvc_sxtab16_ror8(nz, w);
#else
                for (int32_t h = 0; h < 2; ++h) {
                    const int32_t lo = (int8_t)(uint8_t)((uint32_t)w >> (8 * h)) - zp;
                    const int32_t hi = (int8_t)(uint8_t)((uint32_t)w >> (8 * h + 16)) - zp;
                    d[h][s] = (int32_t)(((uint32_t)hi << 16) | (uint16_t)lo);
                }
#endif
            }
            for (int32_t h = 0; h < 2; ++h) {
                e[h][r][0] = tvc_ssub16(d[h][0], d[h][2]);
                e[h][r][1] = tvc_sadd16(d[h][1], d[h][2]);
                e[h][r][2] = tvc_ssub16(d[h][2], d[h][1]);
                e[h][r][3] = tvc_ssub16(d[h][1], d[h][3]);
            }
        }
        for (int32_t h = 0; h < 2; ++h) { /* B^T (d B): column by column */
            int16_t *dst = v + g * 8 + p * 4 + h * 2;
            for (int32_t s = 0; s < 4; ++s) {
                const int32_t c0 = tvc_ssub16(e[h][0][s], e[h][2][s]);
                const int32_t c1 = tvc_sadd16(e[h][1][s], e[h][2][s]);
                const int32_t c2 = tvc_ssub16(e[h][2][s], e[h][1][s]);
                const int32_t c3 = tvc_ssub16(e[h][1][s], e[h][3][s]);
                memcpy(dst + (0 * 4 + s) * C4 * 8, &c0, 4);
                memcpy(dst + (1 * 4 + s) * C4 * 8, &c1, 4);
                memcpy(dst + (2 * 4 + s) * C4 * 8, &c2, 4);
                memcpy(dst + (3 * 4 + s) * C4 * 8, &c3, 4);
            }
        }
    }
}

/* A^T M A / 4 of one tile for one output channel: the four direct sums (m: 16 int32) */
static inline void tvc_wino_out(const int32_t *m, int32_t *y) {
    uint32_t s0[4], s1[4]; /* modular: the proof bounds every true value within int32 */
    for (int32_t j = 0; j < 4; ++j) {
        s0[j] = (uint32_t)m[j] + (uint32_t)m[4 + j] + (uint32_t)m[8 + j];
        s1[j] = (uint32_t)m[4 + j] - (uint32_t)m[8 + j] - (uint32_t)m[12 + j];
    }
    y[0] = (int32_t)(s0[0] + s0[1] + s0[2]) >> 2;
    y[1] = (int32_t)(s0[1] - s0[2] - s0[3]) >> 2;
    y[2] = (int32_t)(s1[0] + s1[1] + s1[2]) >> 2;
    y[3] = (int32_t)(s1[1] - s1[2] - s1[3]) >> 2;
}

/* every output channel of two tiles: M per position as a 2-tile x 2-channel dot product over
 * the input channels (the conv16 inner loop), then the output transform, bias, requantization.
 * ya/yb: the tiles' top-left outputs; rows, cols_a, cols_b: how much of each tile exists. */
static TVC_ALWAYS_INLINE void tvc_wino_tiles(const int16_t *v, const int32_t *u, const int32_t *bias,
                                             const int32_t *rqc, int8_t *ya, int8_t *yb, int32_t rows,
                                             int32_t cols_a, int32_t cols_b, const int32_t OC, const int32_t C,
                                             const int32_t ROW, const int32_t lo, const int32_t hi) {
    const int32_t C4 = C / 4;
    for (int32_t oc = 0; oc < OC; oc += 2, bias += 2, rqc += 8) {
        int32_t m[4][16]; /* [a0, b0, a1, b1][position] */
        const int16_t *vi = v;
        for (int32_t i = 0; i < 16; ++i, vi += C4 * 8) {
            int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
            u = tvc_dot2x2_16(vi, u, C4, &a0, &a1, &b0, &b1);
            m[0][i] = a0;
            m[1][i] = b0;
            m[2][i] = a1;
            m[3][i] = b1;
        }
        for (int32_t q = 0; q < 4; ++q) { /* tile a or b, channel oc or oc + 1 */
            const int32_t o = q >> 1, cols = q & 1 ? cols_b : cols_a;
            if (oc + o >= OC || cols <= 0) {
                continue;
            }
            int32_t y[4];
            tvc_wino_out(m[q], y);
            int8_t *dst = (q & 1 ? yb : ya) + oc + o;
            for (int32_t r = 0; r < rows; ++r) {
                for (int32_t s = 0; s < cols; ++s) {
                    const int32_t acc = y[r * 2 + s] + bias[o];
                    dst[r * ROW + s * OC] = (int8_t)tvc_clamp32(tvc_rqc(rqc + 4 * o, acc), lo, hi);
                }
            }
        }
    }
}

typedef void (*tvc_wino_tiles_fn)(const int16_t *v, int8_t *ya, int8_t *yb, int32_t rows, int32_t cols_a,
                                  int32_t cols_b);

/* the layer: two tiles (a 2x4 block of outputs) at a time */
static TVC_ALWAYS_INLINE void tvc_wino_layer(const int8_t *in, int16_t *v, int8_t *out, tvc_wino_tiles_fn tiles,
                                             const int32_t IN_H, const int32_t IN_W, const int32_t C,
                                             const int32_t OUT_H, const int32_t OUT_W, const int32_t OC,
                                             const int32_t PAD_T, const int32_t PAD_L, const int32_t zp) {
    for (int32_t oy = 0; oy < OUT_H; oy += 2) {
        const int32_t rows = OUT_H - oy < 2 ? OUT_H - oy : 2;
        for (int32_t ox = 0; ox < OUT_W; ox += 4) {
            const int32_t cols_a = OUT_W - ox < 2 ? OUT_W - ox : 2;
            const int32_t cols_b = OUT_W - ox - 2 < 2 ? OUT_W - ox - 2 : 2;
            tvc_wino_in(in, v, 0, oy - PAD_T, ox - PAD_L, IN_H, IN_W, C, zp);
            tvc_wino_in(in, v, 1, oy - PAD_T, ox + 2 - PAD_L, IN_H, IN_W, C, zp);
            int8_t *ya = out + (oy * OUT_W + ox) * OC;
            tiles(v, ya, ya + 2 * OC, rows, cols_a, cols_b);
        }
    }
}


/* --- RNNPool with the layer's parameters compiled in ------------------------------------------
 *
 * The library's bodies (tvc_rnnpool_impl.h) always inlined into the layer's own function with
 * its parameter struct as a constant: hidden sizes, shifts and the patch geometry fold into the
 * code, the 16-wide U h products unroll. */
#define TVC_RNN_INLINE static TVC_ALWAYS_INLINE
#define TVC_RNN_CONSTANT_SHAPES
#include "tvc_rnnpool_impl.h"

typedef void (*tvc_rnnpool_row_fn)(const int8_t *band, int32_t *scratch, int8_t *out);

/* the patch-wise conv + RNNPool band loop, with the layer's own RNNPool row function */
static TVC_ALWAYS_INLINE void tvc_conv_rnnpool_s8_special(const tvc_conv_t *cp, const int8_t *in, const int8_t *w,
                                                          const int32_t *bias, int16_t *conv_scratch,
                                                          const tvc_rnnpool_t *p, int8_t *band, int32_t *scratch,
                                                          int8_t *out, tvc_rnnpool_row_fn row_fn) {
#define TVC_RNNPOOL_CALL row_fn(band, scratch, out + oy * p->out_w * p->out_c)
    TVC_CONV_RNNPOOL_BODY(TVC_FN(conv2d_s8)(&q, in + first * cp->in_w * cp->in_c, w, bias, conv_scratch,
                                             band + (have_hi - have_lo) * row))
#undef TVC_RNNPOOL_CALL
}

#endif
