/* Bilinear resize over H, W (NHWC), TFLite's ResizeBilinearInteger: each output position's
 * source coordinate in 10-bit fixed point from a rounded scale, four codes weighted in Q20 and
 * rounded once, half away from zero. Input and output share their quantization, so codes are
 * interpolated as they are (int8 and int16 alike). */
#include "tvc_common.h"

/* the source coordinate of output position v (Q10) and the two neighbouring input indices */
static inline void TVC_FN(resize_coord)(int32_t v, int32_t scale_10, int32_t half_pixel, int32_t size,
                                        int32_t *scaled, int32_t *lo, int32_t *hi) {
    int32_t s = v * scale_10 + (half_pixel ? scale_10 / 2 - (1 << 9) : 0);
    int32_t l = s / (1 << 10);
    int32_t h = (s + (1 << 10) - 1) / (1 << 10);
    *scaled = s;
    *lo = l > 0 ? l : 0;
    *hi = h < size - 1 ? h : size - 1;
}

/* ACC: the sum's type. int8 fits int32 (|code| <= 128, weights <= 1536 each way); int16 int64 */
#define TVC_BILINEAR_BODY(T, ACC)                                                              \
    const int32_t c = p->c;                                                                    \
    for (int32_t y = 0; y < p->out_h; ++y) {                                                   \
        int32_t sy, y0, y1;                                                                    \
        TVC_FN(resize_coord)(y, p->scale_h, p->half_pixel, p->in_h, &sy, &y0, &y1);            \
        const ACC fy = sy - (y0 << 10);                                                        \
        const T *r0 = in + y0 * p->in_w * c;                                                   \
        const T *r1 = in + y1 * p->in_w * c;                                                   \
        for (int32_t x = 0; x < p->out_w; ++x) {                                               \
            int32_t sx, x0, x1;                                                                \
            TVC_FN(resize_coord)(x, p->scale_w, p->half_pixel, p->in_w, &sx, &x0, &x1);        \
            const ACC fx = sx - (x0 << 10);                                                    \
            const ACC w00 = ((1 << 10) - fy) * ((1 << 10) - fx), w10 = fy * ((1 << 10) - fx);  \
            const ACC w01 = ((1 << 10) - fy) * fx, w11 = fy * fx;                              \
            const T *a = r0 + x0 * c, *b = r1 + x0 * c, *d = r0 + x1 * c, *e = r1 + x1 * c;    \
            for (int32_t k = 0; k < c; ++k) {                                                  \
                const ACC t = a[k] * w00 + b[k] * w10 + d[k] * w01 + e[k] * w11;               \
                const ACC r = t > 0 ? (t + (1 << 19)) / (1 << 20) : (t - (1 << 19)) / (1 << 20); \
                *out++ = (T)r;                                                                 \
            }                                                                                  \
        }                                                                                      \
    }

void TVC_FN(resize_bilinear_s8)(const tvc_resize_t *p, const int8_t *in, int8_t *out) {
    TVC_BILINEAR_BODY(int8_t, int32_t)
}

void TVC_FN(resize_bilinear_s16)(const tvc_resize_t *p, const int16_t *in, int16_t *out) {
    TVC_BILINEAR_BODY(int16_t, int64_t)
}
