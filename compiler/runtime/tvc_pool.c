/* Max / average pooling over H, W (NHWC), and the mean over H, W (global average). */
#include "tvc_common.h"

#define TVC_MIN(T) ((int32_t)(sizeof(T) == 1 ? INT8_MIN : INT16_MIN))
#define TVC_MAX(T) ((int32_t)(sizeof(T) == 1 ? INT8_MAX : INT16_MAX))

static inline void tvc_running_max_s16(const int16_t *x, int16_t *y, int32_t n) {
    for (int32_t c = 0; c < n; ++c) {
        y[c] = x[c] > y[c] ? x[c] : y[c];
    }
}

/* y = max(x, y) per byte; on DSP cores four at a time (SSUB8 sets the lanes' GE flags, SEL
 * picks by them) */
static inline void tvc_running_max_s8(const int8_t *x, int8_t *y, int32_t n) {
    int32_t c = 0;
#if defined(__ARM_FEATURE_DSP)
    for (; c + 4 <= n; c += 4) {
        int8x4_t xv, yv;
        memcpy(&xv, x + c, 4);
        memcpy(&yv, y + c, 4);
        (void)__ssub8(xv, yv);
        yv = (int8x4_t)__sel((uint8x4_t)xv, (uint8x4_t)yv);
        memcpy(y + c, &yv, 4);
    }
#endif
    for (; c < n; ++c) {
        y[c] = x[c] > y[c] ? x[c] : y[c];
    }
}

/* per output pixel: the channel row of the first in-bounds tap, then contiguous per-channel
 * maxima over the others (no bounds checks inside the channel loop) */
#define TVC_MAX_POOL_BODY(T, RUNNING_MAX)                                                                   \
    for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                \
        const int32_t iy0 = oy * p->stride_h - p->pad_t;                                       \
        int32_t ky_lo, ky_hi;                                                                  \
        tvc_tap_range(iy0, p->dil_h, p->k_h, p->in_h, &ky_lo, &ky_hi);                         \
        for (int32_t ox = 0; ox < p->out_w; ++ox) {                                            \
            const int32_t ix0 = ox * p->stride_w - p->pad_l;                                   \
            int32_t kx_lo, kx_hi;                                                              \
            tvc_tap_range(ix0, p->dil_w, p->k_w, p->in_w, &kx_lo, &kx_hi);                     \
            T *y = out + (oy * p->out_w + ox) * p->c;                                          \
            int32_t first = 1;                                                                 \
            for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {                                       \
                for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {                                   \
                    const T *x = in + ((iy0 + ky * p->dil_h) * p->in_w + ix0 + kx * p->dil_w) * p->c; \
                    if (first) {                                                               \
                        memcpy(y, x, (size_t)p->c * sizeof(T));                                \
                        first = 0;                                                             \
                        continue;                                                              \
                    }                                                                          \
                    RUNNING_MAX(x, y, p->c);                                                   \
                }                                                                              \
            }                                                                                  \
            if (first || p->act_min > TVC_MIN(T) || p->act_max < TVC_MAX(T)) {                 \
                for (int32_t c = 0; c < p->c; ++c) {                                           \
                    y[c] = first ? (T)p->act_min : (T)tvc_clamp32(y[c], p->act_min, p->act_max); \
                }                                                                              \
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

void TVC_FN(max_pool_s8)(const tvc_pool_t *p, const int8_t *in, int8_t *out) { TVC_MAX_POOL_BODY(int8_t, tvc_running_max_s8) }
void TVC_FN(max_pool_s16)(const tvc_pool_t *p, const int16_t *in, int16_t *out) { TVC_MAX_POOL_BODY(int16_t, tvc_running_max_s16) }
void TVC_FN(avg_pool_s8)(const tvc_pool_t *p, const int8_t *in, int8_t *out) { TVC_AVG_POOL_BODY(int8_t) }
void TVC_FN(avg_pool_s16)(const tvc_pool_t *p, const int16_t *in, int16_t *out) { TVC_AVG_POOL_BODY(int16_t) }
void TVC_FN(mean_hw_s8)(const tvc_mean_t *p, const int8_t *in, int8_t *out) { TVC_MEAN_BODY(int8_t) }
void TVC_FN(mean_hw_s16)(const tvc_mean_t *p, const int16_t *in, int16_t *out) { TVC_MEAN_BODY(int16_t) }

/* A global average over row bands (streamed stages): int32 sums per channel, the band's cells
 * added to the sums so far (`prior`, 0 for the first band; it may be `sum` itself), wrapping as
 * one sum over the whole map would */
#define TVC_ROW_SUM_BODY(T)                                                                    \
    for (int32_t k = 0; k < c; ++k) {                                                          \
        sum[k] = prior ? prior[k] : 0;                                                         \
    }                                                                                          \
    for (int32_t i = 0; i < pixels; ++i) {                                                     \
        const T *px = x + i * c;                                                               \
        for (int32_t k = 0; k < c; ++k) {                                                      \
            sum[k] = (int32_t)((uint32_t)sum[k] + (uint32_t)(int32_t)px[k]);                   \
        }                                                                                      \
    }

void TVC_FN(row_sum_s8)(const int8_t *x, int32_t pixels, int32_t c, const int32_t *prior, int32_t *sum) { TVC_ROW_SUM_BODY(int8_t) }
void TVC_FN(row_sum_s16)(const int16_t *x, int32_t pixels, int32_t c, const int32_t *prior, int32_t *sum) { TVC_ROW_SUM_BODY(int16_t) }

/* the average pool's last step on the sums: rounded division by the count (TFLite) */
#define TVC_FINISH_AVG_BODY(T)                                                                 \
    for (int32_t k = 0; k < c; ++k) {                                                          \
        out[k] = (T)tvc_clamp32(tvc_div_round(sum[k], count), act_min, act_max);               \
    }

void TVC_FN(pool_finish_avg_s8)(const int32_t *sum, int32_t c, int32_t count, int32_t act_min, int32_t act_max, int8_t *out) { TVC_FINISH_AVG_BODY(int8_t) }
void TVC_FN(pool_finish_avg_s16)(const int32_t *sum, int32_t c, int32_t count, int32_t act_min, int32_t act_max, int16_t *out) { TVC_FINISH_AVG_BODY(int16_t) }

/* the mean's last step on the sums: one requantization, as TVC_MEAN_BODY after its sum */
#define TVC_FINISH_MEAN_BODY(T)                                                                \
    const int32_t count = p->h * p->w;                                                         \
    for (int32_t c = 0; c < p->c; ++c) {                                                       \
        const int32_t shifted = (int32_t)((uint32_t)in[c] - (uint32_t)(p->in_zp * count));     \
        const int64_t v = (int64_t)tvc_mbqm(shifted, p->mult, p->shift) + p->out_zp;           \
        out[c] = (T)tvc_clamp32(v, p->act_min, p->act_max);                                    \
    }

void TVC_FN(pool_finish_mean_s8)(const tvc_mean_t *p, const int32_t *in, int8_t *out) { TVC_FINISH_MEAN_BODY(int8_t) }
void TVC_FN(pool_finish_mean_s16)(const tvc_mean_t *p, const int32_t *in, int16_t *out) { TVC_FINISH_MEAN_BODY(int16_t) }
