/* 2-D convolution (general, grouped, depthwise, dilated), NHWC data, OHWI weights; depthwise
 * with a multiplier also has a channel-vectorized kernel on [KH][KW][C_out] weights. */
#include "tvc_common.h"

static inline int64_t tvc_conv_requant(const tvc_conv_t *p, int64_t acc, int32_t oc) {
    if (p->requant == TVC_RQ_MULT) {
        return (int64_t)tvc_mbqm((int32_t)acc, p->mult[oc], p->shift[oc]) + p->out_zp;
    }
    return tvc_shift_round(acc, p->shift[0]);
}

void TVC_FN(conv2d_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                       int8_t *out) {
    const int32_t out_per_group = p->out_c / p->groups;
    const int32_t ipg = p->in_c / p->groups;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky_lo, ky_hi;
        tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int32_t kx_lo, kx_hi;
            tvc_tap_range(ix0, p->dil_w, p->k_w, p->in_w, &kx_lo, &kx_hi);
            int8_t *y = out + (oy * p->out_w + ox) * p->out_c;
            for (int32_t oc = 0; oc < p->out_c; ++oc) {
                const int32_t g = oc / out_per_group;
                int32_t acc = bias ? bias[oc] : 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                    const int8_t *xrow = in + ((iy0 + ky * p->dil_h) * p->in_w) * p->in_c + g * ipg;
                    const int8_t *wrow = w + ((oc * p->k_h + ky) * p->k_w) * ipg;
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                        acc = tvc_dot_s8(xrow + (ix0 + kx * p->dil_w) * p->in_c, wrow + kx * ipg, ipg,
                                         p->in_zp, acc);
                    }
                }
                y[oc] = (int8_t)tvc_clamp32(tvc_conv_requant(p, acc, oc), p->act_min, p->act_max);
            }
        }
    }
}

/* depthwise: out channel oc reads input channel oc / mult; weights [KH][KW][C_out] so that a
 * run of output channels reads contiguous weights; four channels accumulate in registers */
void TVC_FN(depthwise_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w_hwc, const int32_t *bias,
                          int8_t *out) {
    const int32_t mult = p->out_c / p->in_c;
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
                for (; oc + 4 <= p->out_c; oc += 4) {
                    int32_t a0 = bias ? bias[oc] : 0, a1 = bias ? bias[oc + 1] : 0;
                    int32_t a2 = bias ? bias[oc + 2] : 0, a3 = bias ? bias[oc + 3] : 0;
                    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                        const int32_t iy = iy0 + ky * p->dil_h;
                        for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                            const int8_t *x = in + (iy * p->in_w + ix0 + kx * p->dil_w) * p->in_c + oc;
                            const int8_t *wk = w_hwc + (ky * p->k_w + kx) * p->out_c + oc;
                            a0 += ((int32_t)x[0] - p->in_zp) * wk[0];
                            a1 += ((int32_t)x[1] - p->in_zp) * wk[1];
                            a2 += ((int32_t)x[2] - p->in_zp) * wk[2];
                            a3 += ((int32_t)x[3] - p->in_zp) * wk[3];
                        }
                    }
                    y[oc] = (int8_t)tvc_clamp32(tvc_conv_requant(p, a0, oc), p->act_min, p->act_max);
                    y[oc + 1] = (int8_t)tvc_clamp32(tvc_conv_requant(p, a1, oc + 1), p->act_min, p->act_max);
                    y[oc + 2] = (int8_t)tvc_clamp32(tvc_conv_requant(p, a2, oc + 2), p->act_min, p->act_max);
                    y[oc + 3] = (int8_t)tvc_clamp32(tvc_conv_requant(p, a3, oc + 3), p->act_min, p->act_max);
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
                y[oc] = (int8_t)tvc_clamp32(tvc_conv_requant(p, acc, oc), p->act_min, p->act_max);
            }
        }
    }
}

void TVC_FN(conv2d_s16)(const tvc_conv_t *p, const int16_t *in, const int16_t *w, const int64_t *bias,
                        int16_t *out) {
    const int32_t out_per_group = p->out_c / p->groups;
    const int32_t ipg = p->in_c / p->groups;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky_lo, ky_hi;
        tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int32_t kx_lo, kx_hi;
            tvc_tap_range(ix0, p->dil_w, p->k_w, p->in_w, &kx_lo, &kx_hi);
            for (int32_t oc = 0; oc < p->out_c; ++oc) {
                const int32_t g = oc / out_per_group;
                int64_t acc = bias ? bias[oc] : 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                    const int16_t *xrow = in + ((iy0 + ky * p->dil_h) * p->in_w) * p->in_c + g * ipg;
                    const int16_t *wrow = w + ((oc * p->k_h + ky) * p->k_w) * ipg;
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                        const int16_t *x = xrow + (ix0 + kx * p->dil_w) * p->in_c;
                        const int16_t *wk = wrow + kx * ipg;
                        for (int32_t ic = 0; ic < ipg; ++ic) {
                            acc += (int64_t)((int32_t)x[ic] * (int32_t)wk[ic]);
                        }
                    }
                }
                out[(oy * p->out_w + ox) * p->out_c + oc] =
                    (int16_t)tvc_clamp32(tvc_conv_requant(p, acc, oc), p->act_min, p->act_max);
            }
        }
    }
}
