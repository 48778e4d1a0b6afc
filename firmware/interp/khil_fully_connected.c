/* FULLY_CONNECTED int8: LiteRT's reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel, in the overloads BUILTIN_REF calls: the accumulator is requantised
 * with round(double(acc) * effective_scale), not with a fixed-point multiplier. We reproduce
 * that double multiply and rounding exactly in integers (khil_mul_round_double). */
#include "khil_internal.h"
#include "khil_quant.h"

uint32_t khil_fully_connected_scratch_bytes(const khil_fc_params *p)
{
    (void)p;
    return 0;
}

static inline int8_t fc_output(const khil_op *op, const khil_fc_params *p, int32_t acc,
                               int32_t unit)
{
    const int32_t q = p->per_channel ? unit : 0;
#ifdef KHIL_VARIANTS
    if (op->variant & KHIL_VARIANT_FP32_REQUANT) {
        return (int8_t)khil_requant_fp32(acc, p->fp32_scale[q], p->output_offset, p->act_min,
                                         p->act_max);
    }
    if (op->variant & KHIL_VARIANT_FC_FIXED_POINT) {
        acc = khil_requant(acc, p->mult[q], p->shift[q], op->variant);
    } else
#endif
    {
        (void)op;
        acc = khil_mul_round_double(acc, p->scale_mant[q], p->scale_exp[q]);
    }
    acc += p->output_offset;
    acc = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
    return (int8_t)acc;
}

void khil_kernel_fully_connected(const khil_op *op, khil_tensor *t)
{
    const khil_fc_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    const int8_t *w = p->weights;
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
            if (p->bias != NULL) {
                acc += khil_load_i32(p->bias + 4 * u);
            }
            y[b * units + u] = fc_output(op, p, acc, u);
        }
    }
}
