/* FULLY_CONNECTED int8: LiteRT's reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel, in the overloads BUILTIN_REF calls: the accumulator is requantised
 * with round(double(acc) * effective_scale), not with a fixed-point multiplier. We reproduce
 * that double multiply and rounding exactly in integers (khil_mul_round_double). */
#include "khil_internal.h"
#include "khil_quant.h"

void khil_kernel_fully_connected(const khil_op *op, khil_tensor *t)
{
    const khil_fc_params *p = &op->p.fc;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    const int8_t *w = (const int8_t *)t[op->in[1]].data;
    const uint8_t *bias = op->in[2] >= 0 ? t[op->in[2]].data : NULL;
    int8_t *y = (int8_t *)t[op->out].data;
    const int32_t depth = p->accum_depth, units = p->output_depth;

    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *xb = x + b * depth;
        for (int32_t u = 0; u < units; u++) {
            const int8_t *wu = w + u * depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < depth; d++) {
                acc += (wu[d] + p->filter_offset) * (xb[d] + p->input_offset);
            }
            if (bias != NULL) {
                acc += khil_load_i32(bias + 4 * u);
            }
            const int32_t q = p->per_channel ? u : 0;
#ifdef KHIL_VARIANTS
            if (KHIL_OP_VARIANT(op) & KHIL_VARIANT_FP32_REQUANT) {
                y[b * units + u] = (int8_t)khil_requant_fp32(acc, p->fp32_scale[q], p->output_offset,
                                                             op->act_min, op->act_max);
                continue;
            }
            if (KHIL_OP_VARIANT(op) & KHIL_VARIANT_FC_FIXED_POINT) {
                acc = khil_requant(acc, p->mult[q], p->shift[q], KHIL_OP_VARIANT(op));
            } else
#endif
            {
                acc = khil_mul_round_double(acc, p->scale_mant[q], p->scale_exp[q]);
            }
            acc += p->output_offset;
            acc = acc < op->act_min ? op->act_min : (acc > op->act_max ? op->act_max : acc);
            y[b * units + u] = (int8_t)acc;
        }
    }
}
