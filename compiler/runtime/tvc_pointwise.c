/* Pointwise functions by table (int8: 256 entries; int16: linear interpolation), and
 * requantization (standalone ReLU / clip, int -> int QUANTIZE). */
#include "tvc_common.h"

void TVC_FN(lut_s8)(int32_t count, const int8_t *table, const int8_t *in, int8_t *out) {
    for (int32_t i = 0; i < count; ++i) {
        out[i] = table[(int32_t)in[i] + 128];
    }
}

void TVC_FN(interp_s16)(int32_t count, const int32_t *table, int32_t table_bits, const int16_t *in,
                        int16_t *out) {
    const int32_t step_bits = 16 - table_bits;
    for (int32_t i = 0; i < count; ++i) {
        const int32_t v = (int32_t)in[i] + 32768;
        const int32_t idx = v >> step_bits, frac = v & ((1 << step_bits) - 1);
        const int64_t y = table[idx] +
                          tvc_shift_round((int64_t)(table[idx + 1] - table[idx]) * frac, step_bits);
        out[i] = (int16_t)tvc_clamp32(y, -32768, 32767);
    }
}

#define TVC_REQUANT_BODY(T)                                                                    \
    for (int32_t i = 0; i < p->count; ++i) {                                                   \
        const int64_t v = (int64_t)tvc_mbqm((int32_t)in[i] - p->in_zp, p->mult, p->shift) + p->out_zp; \
        out[i] = (T)tvc_clamp32(v, p->act_min, p->act_max);                                    \
    }

void TVC_FN(requant_s8)(const tvc_requant_t *p, const int8_t *in, int8_t *out) { TVC_REQUANT_BODY(int8_t) }
void TVC_FN(requant_s16)(const tvc_requant_t *p, const int16_t *in, int16_t *out) { TVC_REQUANT_BODY(int16_t) }
/* the uint8 edges of a TFLite model with uint8 input or output */
void TVC_FN(requant_u8_s8)(const tvc_requant_t *p, const uint8_t *in, int8_t *out) { TVC_REQUANT_BODY(int8_t) }
void TVC_FN(requant_s8_u8)(const tvc_requant_t *p, const int8_t *in, uint8_t *out) { TVC_REQUANT_BODY(uint8_t) }
