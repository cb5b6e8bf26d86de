/* 2-D convolution (general, grouped, depthwise, dilated), NHWC data, OHWI weights. */
#include "tvc_common.h"

#define TVC_CONV_BODY(IN_T, ACC_T, OUT_LO, OUT_HI)                                              \
    const int32_t out_per_group = p->out_c / p->groups;                                         \
    const int32_t in_per_group = p->in_c / p->groups;                                           \
    for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                 \
        for (int32_t ox = 0; ox < p->out_w; ++ox) {                                             \
            for (int32_t oc = 0; oc < p->out_c; ++oc) {                                         \
                const int32_t g = oc / out_per_group;                                           \
                ACC_T acc = bias ? (ACC_T)bias[oc] : 0;                                         \
                for (int32_t ky = 0; ky < p->k_h; ++ky) {                                       \
                    const int32_t iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;             \
                    if (iy < 0 || iy >= p->in_h) {                                              \
                        continue;                                                               \
                    }                                                                           \
                    for (int32_t kx = 0; kx < p->k_w; ++kx) {                                   \
                        const int32_t ix = ox * p->stride_w - p->pad_l + kx * p->dil_w;         \
                        if (ix < 0 || ix >= p->in_w) {                                          \
                            continue;                                                           \
                        }                                                                       \
                        const IN_T *x = in + ((iy * p->in_w + ix) * p->in_c + g * in_per_group); \
                        const IN_T *wk = w + (((oc * p->k_h + ky) * p->k_w + kx) * in_per_group); \
                        for (int32_t ic = 0; ic < in_per_group; ++ic) {                         \
                            acc += (ACC_T)((int32_t)x[ic] - p->in_zp) * (ACC_T)wk[ic];          \
                        }                                                                       \
                    }                                                                           \
                }                                                                               \
                int64_t v;                                                                      \
                if (p->requant == TVC_RQ_MULT) {                                                \
                    v = (int64_t)tvc_mbqm((int32_t)acc, p->mult[oc], p->shift[oc]) + p->out_zp; \
                } else {                                                                        \
                    v = tvc_shift_round((int64_t)acc, p->shift[0]);                             \
                }                                                                               \
                out[(oy * p->out_w + ox) * p->out_c + oc] =                                     \
                    (IN_T)tvc_clamp32(v, p->act_min, p->act_max);                               \
            }                                                                                   \
        }                                                                                       \
    }

void TVC_FN(conv2d_s8)(const tvc_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                       int8_t *out) {
    TVC_CONV_BODY(int8_t, int32_t, -128, 127)
}

void TVC_FN(conv2d_s16)(const tvc_conv_t *p, const int16_t *in, const int16_t *w, const int64_t *bias,
                        int16_t *out) {
    TVC_CONV_BODY(int16_t, int64_t, -32768, 32767)
}
