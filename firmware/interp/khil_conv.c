/* CONV_2D and DEPTHWISE_CONV_2D, int8 with per-channel requantisation: the arithmetic of
 * LiteRT's reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel. */
#include "khil_internal.h"
#include "khil_quant.h"

static inline int32_t clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Requantises one accumulator of output channel ch to the int8 output. */
static inline int8_t conv_output(const khil_op *op, const khil_conv_params *p, int32_t acc,
                                 int32_t ch)
{
    const int32_t q = p->per_channel ? ch : 0;
#ifdef KHIL_VARIANTS
    if (op->variant & KHIL_VARIANT_FP32_REQUANT) {
        return (int8_t)khil_requant_fp32(acc, p->fp32_scale[q], p->output_offset, p->act_min,
                                         p->act_max);
    }
#endif
    (void)op;
    acc = khil_requant(acc, p->mult[q], p->shift[q], KHIL_OP_VARIANT(op)) + p->output_offset;
    return (int8_t)clamp(acc, p->act_min, p->act_max);
}

uint32_t khil_conv_scratch_bytes(const khil_conv_params *p)
{
    (void)p;
    return 0;
}

uint32_t khil_depthwise_scratch_bytes(const khil_conv_params *p)
{
    (void)p;
    return 0;
}

void khil_kernel_conv(const khil_op *op, khil_tensor *t)
{
    const khil_conv_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    const int8_t *w = p->weights;
    int8_t *y = (int8_t *)t[op->out].data;
    const int32_t ih = p->in_h, iw = p->in_w, ic = p->in_c;
    const int32_t kh = p->k_h, kw = p->k_w, fic = p->f_in_c;
    const int32_t oh = p->out_h, ow = p->out_w, oc = p->out_c;
    const int32_t per_group = oc / (ic / fic);

    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (int32_t c = 0; c < oc; c++) {
                    const int32_t g = c / per_group;
                    int32_t acc = 0;
                    for (int32_t fy = 0; fy < kh; fy++) {
                        const int32_t iy = iy0 + p->dilation_h * fy;
                        if (iy < 0 || iy >= ih) {
                            continue;
                        }
                        for (int32_t fx = 0; fx < kw; fx++) {
                            const int32_t ix = ix0 + p->dilation_w * fx;
                            if (ix < 0 || ix >= iw) {
                                continue;
                            }
                            const int8_t *xp = x + ((b * ih + iy) * iw + ix) * ic + g * fic;
                            const int8_t *wp = w + ((c * kh + fy) * kw + fx) * fic;
                            for (int32_t k = 0; k < fic; k++) {
                                acc += wp[k] * (xp[k] + p->input_offset);
                            }
                        }
                    }
                    if (p->bias != NULL) {
                        acc += khil_load_i32(p->bias + 4 * c);
                    }
                    y[((b * oh + oy) * ow + ox) * oc + c] = conv_output(op, p, acc, c);
                }
            }
        }
    }
}

void khil_kernel_depthwise(const khil_op *op, khil_tensor *t)
{
    const khil_conv_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    const int8_t *w = p->weights;
    int8_t *y = (int8_t *)t[op->out].data;
    const int32_t ih = p->in_h, iw = p->in_w, ic = p->in_c;
    const int32_t kh = p->k_h, kw = p->k_w;
    const int32_t oh = p->out_h, ow = p->out_w, oc = p->out_c;
    const int32_t dm = p->depth_multiplier;

    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (int32_t c = 0; c < ic; c++) {
                    for (int32_t m = 0; m < dm; m++) {
                        const int32_t o = m + c * dm;
                        int32_t acc = 0;
                        for (int32_t fy = 0; fy < kh; fy++) {
                            const int32_t iy = iy0 + p->dilation_h * fy;
                            if (iy < 0 || iy >= ih) {
                                continue;
                            }
                            for (int32_t fx = 0; fx < kw; fx++) {
                                const int32_t ix = ix0 + p->dilation_w * fx;
                                if (ix < 0 || ix >= iw) {
                                    continue;
                                }
                                const int32_t xv = x[((b * ih + iy) * iw + ix) * ic + c];
                                const int32_t wv = w[(fy * kw + fx) * oc + o];
                                acc += wv * (xv + p->input_offset);
                            }
                        }
                        if (p->bias != NULL) {
                            acc += khil_load_i32(p->bias + 4 * o);
                        }
                        y[((b * oh + oy) * ow + ox) * oc + o] = conv_output(op, p, acc, o);
                    }
                }
            }
        }
    }
}
