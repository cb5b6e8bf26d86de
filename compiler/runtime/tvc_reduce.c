/* Reductions over the last axis of NHWC data: the channel maximum (S3FD's max-out background
 * class). Codes compare as values: input and output share their quantization. */
#include "tvc_common.h"

#define TVC_REDUCE_MAX_BODY(T)                                                                 \
    for (int32_t r = 0; r < rows; ++r) {                                                      \
        const T *x = in + r * depth;                                                          \
        T m = x[0];                                                                           \
        for (int32_t c = 1; c < depth; ++c) {                                                 \
            m = x[c] > m ? x[c] : m;                                                          \
        }                                                                                     \
        out[r] = m;                                                                           \
    }

void TVC_FN(reduce_max_last_b1)(int32_t rows, int32_t depth, const int8_t *in, int8_t *out) {
    TVC_REDUCE_MAX_BODY(int8_t)
}

void TVC_FN(reduce_max_last_b2)(int32_t rows, int32_t depth, const int16_t *in, int16_t *out) {
    TVC_REDUCE_MAX_BODY(int16_t)
}
