/* Max / average pooling over H, W (NHWC), and the mean over H, W (global average). */
#include "tvc_common.h"

#define TVC_MAX_POOL_BODY(T)                                                                   \
    for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                \
        for (int32_t ox = 0; ox < p->out_w; ++ox) {                                            \
            for (int32_t c = 0; c < p->c; ++c) {                                               \
                int32_t best = INT32_MIN;                                                      \
                for (int32_t ky = 0; ky < p->k_h; ++ky) {                                      \
                    const int32_t iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;            \
                    if (iy < 0 || iy >= p->in_h) {                                             \
                        continue;                                                              \
                    }                                                                          \
                    for (int32_t kx = 0; kx < p->k_w; ++kx) {                                  \
                        const int32_t ix = ox * p->stride_w - p->pad_l + kx * p->dil_w;        \
                        if (ix < 0 || ix >= p->in_w) {                                         \
                            continue;                                                          \
                        }                                                                      \
                        const int32_t v = in[(iy * p->in_w + ix) * p->c + c];                  \
                        best = v > best ? v : best;                                            \
                    }                                                                          \
                }                                                                              \
                out[(oy * p->out_w + ox) * p->c + c] = (T)tvc_clamp32(best, p->act_min, p->act_max); \
            }                                                                                  \
        }                                                                                      \
    }

/* sum of the in-bounds cells / their count, rounded half away from zero (TFLite) */
#define TVC_AVG_POOL_BODY(T)                                                                   \
    for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                \
        for (int32_t ox = 0; ox < p->out_w; ++ox) {                                            \
            for (int32_t c = 0; c < p->c; ++c) {                                               \
                int32_t sum = 0, count = 0;                                                    \
                for (int32_t ky = 0; ky < p->k_h; ++ky) {                                      \
                    const int32_t iy = oy * p->stride_h - p->pad_t + ky;                       \
                    if (iy < 0 || iy >= p->in_h) {                                             \
                        continue;                                                              \
                    }                                                                          \
                    for (int32_t kx = 0; kx < p->k_w; ++kx) {                                  \
                        const int32_t ix = ox * p->stride_w - p->pad_l + kx;                   \
                        if (ix < 0 || ix >= p->in_w) {                                         \
                            continue;                                                          \
                        }                                                                      \
                        sum += in[(iy * p->in_w + ix) * p->c + c];                             \
                        ++count;                                                               \
                    }                                                                          \
                }                                                                              \
                const int32_t avg = count ? tvc_div_round(sum, count) : 0;                     \
                out[(oy * p->out_w + ox) * p->c + c] = (T)tvc_clamp32(avg, p->act_min, p->act_max); \
            }                                                                                  \
        }                                                                                      \
    }

/* TFLite QuantizedMeanOrSum: integer sum, then one requantization (the 1/count folded into the
 * multiplier and shift at compile time) */
#define TVC_MEAN_BODY(T)                                                                       \
    const int32_t count = p->h * p->w;                                                         \
    for (int32_t b = 0; b < p->batch; ++b) {                                                   \
        for (int32_t c = 0; c < p->c; ++c) {                                                   \
            int32_t sum = 0;                                                                   \
            for (int32_t i = 0; i < count; ++i) {                                              \
                sum += in[(b * count + i) * p->c + c];                                         \
            }                                                                                  \
            const int32_t shifted = (int32_t)((uint32_t)sum - (uint32_t)(p->in_zp * count));   \
            const int64_t v = (int64_t)tvc_mbqm(shifted, p->mult, p->shift) + p->out_zp;       \
            out[b * p->c + c] = (T)tvc_clamp32(v, p->act_min, p->act_max);                     \
        }                                                                                      \
    }

void TVC_FN(max_pool_s8)(const tvc_pool_t *p, const int8_t *in, int8_t *out) { TVC_MAX_POOL_BODY(int8_t) }
void TVC_FN(max_pool_s16)(const tvc_pool_t *p, const int16_t *in, int16_t *out) { TVC_MAX_POOL_BODY(int16_t) }
void TVC_FN(avg_pool_s8)(const tvc_pool_t *p, const int8_t *in, int8_t *out) { TVC_AVG_POOL_BODY(int8_t) }
void TVC_FN(avg_pool_s16)(const tvc_pool_t *p, const int16_t *in, int16_t *out) { TVC_AVG_POOL_BODY(int16_t) }
void TVC_FN(mean_hw_s8)(const tvc_mean_t *p, const int8_t *in, int8_t *out) { TVC_MEAN_BODY(int8_t) }
void TVC_FN(mean_hw_s16)(const tvc_mean_t *p, const int16_t *in, int16_t *out) { TVC_MEAN_BODY(int16_t) }
