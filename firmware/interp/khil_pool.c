/* AVERAGE_POOL_2D int8: LiteRT's reference_integer_ops::AveragePool. Padding cells are left out
 * of the count; the average rounds half away from zero. Windows of up to 256 cells sum four
 * channels per word (SXTAB16 into int16 pairs). */
#include "khil_internal.h"
#include "khil_simd.h"

void khil_kernel_average_pool(const khil_op *op, khil_tensor *t)
{
    const khil_pool_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    int8_t *y = (int8_t *)t[op->out].data;
    const int32_t batches = p->batches, ih = p->in_h, iw = p->in_w, ch = p->channels;
    const int32_t oh = p->out_h, ow = p->out_w;

    for (int32_t b = 0; b < batches; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = iy0 < 0 ? -iy0 : 0;
            const int32_t fy1 = p->filter_h < ih - iy0 ? p->filter_h : ih - iy0;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = ix0 < 0 ? -ix0 : 0;
                const int32_t fx1 = p->filter_w < iw - ix0 ? p->filter_w : iw - ix0;
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                int32_t c = 0;
                if (count > 0 && count <= 256) {
                    /* four channels per word, summed as two pairs of int16 (|sum| <= 128 * 256
                     * fits), then divided as below */
                    for (; c + 4 <= ch; c += 4) {
                        uint32_t s02 = 0, s13 = 0;
                        for (int32_t fy = fy0; fy < fy1; fy++) {
                            const int8_t *xr = x + ((b * ih + iy0 + fy) * iw + ix0) * ch + c;
                            for (int32_t fx = fx0; fx < fx1; fx++) {
                                const uint32_t v = khil_ld32(xr + fx * ch);
                                s02 = khil_sxtab16(s02, v);
                                s13 = khil_sxtab16_ror8(s13, v);
                            }
                        }
                        const int32_t sums[4] = {(int16_t)(uint16_t)s02, (int16_t)(uint16_t)s13,
                                                 (int16_t)(uint16_t)(s02 >> 16),
                                                 (int16_t)(uint16_t)(s13 >> 16)};
                        for (int32_t j = 0; j < 4; j++) {
                            const int32_t acc = sums[j];
                            int32_t avg = acc > 0 ? (acc + count / 2) / count
                                                  : (acc - count / 2) / count;
                            avg = avg < p->act_min ? p->act_min
                                                   : (avg > p->act_max ? p->act_max : avg);
                            y[((b * oh + oy) * ow + ox) * ch + c + j] = (int8_t)avg;
                        }
                    }
                }
                for (; c < ch; c++) {
                    int32_t acc = 0;
                    for (int32_t fy = fy0; fy < fy1; fy++) {
                        for (int32_t fx = fx0; fx < fx1; fx++) {
                            acc += x[((b * ih + iy0 + fy) * iw + ix0 + fx) * ch + c];
                        }
                    }
                    if (count <= 0) {
                        acc = 0; /* LiteRT skips such outputs; they cannot occur in valid models */
                    } else {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    acc = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
                    y[((b * oh + oy) * ow + ox) * ch + c] = (int8_t)acc;
                }
            }
        }
    }
}
