/* Data movement: strided gathers (slice, split, transpose, channel permutation), padding,
 * concatenation. Element sizes 1 (int8) and 2 (int16); values never change. */
#include "tvc_common.h"

/* STRIDED is the strided side's element, DENSE the contiguous side's */
#define TVC_STRIDED_BODY(ASSIGN)                                                               \
    int32_t o = 0;                                                                             \
    for (int32_t i0 = 0; i0 < p->dims[0]; ++i0) {                                              \
        for (int32_t i1 = 0; i1 < p->dims[1]; ++i1) {                                          \
            for (int32_t i2 = 0; i2 < p->dims[2]; ++i2) {                                      \
                const int32_t base = p->offset + i0 * p->strides[0] + i1 * p->strides[1] +     \
                                     i2 * p->strides[2];                                       \
                for (int32_t i3 = 0; i3 < p->dims[3]; ++i3, ++o) {                             \
                    ASSIGN(base + i3 * p->strides[3], o);                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define TVC_GATHER_ONE(s, d) out[d] = in[s]
#define TVC_SCATTER_ONE(s, d) out[s] = in[d]

void TVC_FN(gather_b1)(const tvc_strided_t *p, const int8_t *in, int8_t *out) { TVC_STRIDED_BODY(TVC_GATHER_ONE) }
void TVC_FN(gather_b2)(const tvc_strided_t *p, const int16_t *in, int16_t *out) { TVC_STRIDED_BODY(TVC_GATHER_ONE) }
void TVC_FN(scatter_b1)(const tvc_strided_t *p, const int8_t *in, int8_t *out) { TVC_STRIDED_BODY(TVC_SCATTER_ONE) }
void TVC_FN(scatter_b2)(const tvc_strided_t *p, const int16_t *in, int16_t *out) { TVC_STRIDED_BODY(TVC_SCATTER_ONE) }

/* out[r][c] = in[r][perm[c]]: a channel shuffle in NHWC */
#define TVC_PERMUTE_BODY                                                                       \
    for (int32_t r = 0; r < rows; ++r) {                                                       \
        for (int32_t c = 0; c < depth; ++c) {                                                  \
            out[r * depth + c] = in[r * depth + perm[c]];                                      \
        }                                                                                      \
    }

void TVC_FN(permute_last_b1)(int32_t rows, int32_t depth, const int32_t *perm, const int8_t *in, int8_t *out) { TVC_PERMUTE_BODY }
void TVC_FN(permute_last_b2)(int32_t rows, int32_t depth, const int32_t *perm, const int16_t *in, int16_t *out) { TVC_PERMUTE_BODY }

void TVC_FN(fill_b1)(int32_t count, int8_t value, int8_t *out) {
    for (int32_t i = 0; i < count; ++i) {
        out[i] = value;
    }
}

void TVC_FN(fill_b2)(int32_t count, int16_t value, int16_t *out) {
    for (int32_t i = 0; i < count; ++i) {
        out[i] = value;
    }
}

/* nearest-neighbour upscaling by integer factors, NHWC: out[y][x] = in[y / fh][x / fw] */
#define TVC_RESIZE_BODY(T)                                                                     \
    for (int32_t y = 0; y < in_h * fh; ++y) {                                                  \
        for (int32_t x = 0; x < in_w * fw; ++x) {                                              \
            memcpy(out + (y * in_w * fw + x) * c, in + ((y / fh) * in_w + x / fw) * c,         \
                   (size_t)c * sizeof(T));                                                     \
        }                                                                                      \
    }

void TVC_FN(resize_nearest_b1)(int32_t in_h, int32_t in_w, int32_t c, int32_t fh, int32_t fw, const int8_t *in,
                               int8_t *out) {
    TVC_RESIZE_BODY(int8_t)
}

void TVC_FN(resize_nearest_b2)(int32_t in_h, int32_t in_w, int32_t c, int32_t fh, int32_t fw, const int16_t *in,
                               int16_t *out) {
    TVC_RESIZE_BODY(int16_t)
}
