/* RNNPool with FastGRNN cells (../shared/RNNPOOL.md) in int16 fixed point, the arithmetic of
 * compiler/ir/ops/rnnpool.py step for step.
 *
 * Each patch is read by stride straight out of its producer's buffer (no patch copy): W1 x is
 * computed once per patch pixel (the row and the column sweep through a pixel share it), W2 r
 * once per summary (shared by RNN2's forward and backward sweeps). U h, the bulk of the work,
 * runs two MACs per SMLALD into a 64-bit accumulator on DSP cores. */
#include "tvc_common.h"
#include "tvc_rnnpool_impl.h"

void TVC_FN(rnnpool_s8)(const tvc_rnnpool_t *p, const int8_t *in, int32_t rows, int32_t *scratch, int8_t *out) {
    TVC_FN(rnnpool_body_s8)(p, in, rows, scratch, out);
}

void TVC_FN(rnnpool_s16)(const tvc_rnnpool_t *p, const int16_t *in, int32_t rows, int32_t *scratch, int16_t *out) {
    TVC_RNNPOOL_BODY(int16_t)
}

void TVC_FN(conv_rnnpool_s8)(const tvc_conv_t *cp, const int8_t *in, const int8_t *w, const int32_t *bias,
                             int16_t *conv_scratch, const tvc_rnnpool_t *p, int8_t *band, int32_t *scratch,
                             int8_t *out) {
#define TVC_RNNPOOL_CALL TVC_FN(rnnpool_s8)(p, band, 1, scratch, out + oy * p->out_w * p->out_c)
    TVC_CONV_RNNPOOL_BODY(TVC_FN(conv2d_s8)(&q, in + first * cp->in_w * cp->in_c, w, bias, conv_scratch,
                                             band + (have_hi - have_lo) * row))
#undef TVC_RNNPOOL_CALL
}

void TVC_FN(conv_rnnpool_s16)(const tvc_conv_t *cp, const int16_t *in, const int16_t *w, const int64_t *bias,
                              const tvc_rnnpool_t *p, int16_t *band, int32_t *scratch, int16_t *out) {
#define TVC_RNNPOOL_CALL TVC_FN(rnnpool_s16)(p, band, 1, scratch, out + oy * p->out_w * p->out_c)
    TVC_CONV_RNNPOOL_BODY(TVC_FN(conv2d_s16)(&q, in + first * cp->in_w * cp->in_c, w, bias,
                                              band + (have_hi - have_lo) * row))
#undef TVC_RNNPOOL_CALL
}
