/* FULLY_CONNECTED int8: LiteRT's reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel, in the overloads BUILTIN_REF calls: the accumulator is requantised
 * with round(double(acc) * effective_scale), not with a fixed-point multiplier. We reproduce
 * that double multiply and rounding exactly in integers (khil_mul_round_double). */
#include "khil_gemm.h"
#include "khil_internal.h"
#include "khil_quant.h"

/* Symmetric weights (the int8 spec): four units at a time (then one) take dual-MAC dot
 * products straight from the int8 input (no scratch); asymmetric weights take the reference
 * loop. */
static int fc_packed(const khil_fc_params *p)
{
    return p->filter_offset == 0;
}

uint32_t khil_fully_connected_scratch_bytes(const khil_fc_params *p)
{
    (void)p;
    return 0;
}

static inline int32_t bias_of(const khil_fc_params *p, int32_t u)
{
    return p->bias != NULL ? khil_load_i32(p->bias + 4 * u) : 0;
}

/* The scale's 32-bit form for khil_round32_apply (per-tensor scales: prepared once per layer),
 * or 0 where it does not apply. */
typedef struct {
    uint32_t m;
    int ok;
} fc_round32;

static inline fc_round32 fc_round32_make(const khil_fc_params *p, int32_t q)
{
    fc_round32 r;
    r.ok = khil_round32_make(p->scale_mant[q], p->scale_exp[q], &r.m);
    return r;
}

static inline int8_t fc_output(const khil_op *op, const khil_fc_params *p, int32_t acc,
                               int32_t unit, const fc_round32 *layer)
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
        const fc_round32 r32 = p->per_channel ? fc_round32_make(p, q) : *layer;
        int32_t r;
        acc = r32.ok && khil_round32_apply(acc, r32.m, &r)
                  ? r
                  : khil_mul_round_double(acc, p->scale_mant[q], p->scale_exp[q]);
    }
    acc += p->output_offset;
    acc = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
    return (int8_t)acc;
}

static void fc_packed_rows(const khil_op *op, const khil_fc_params *p, const int8_t *x,
                           int8_t *y)
{
    const int32_t k = p->accum_depth, units = p->output_depth;
    const fc_round32 layer = fc_round32_make(p, 0);
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *xb = x + b * k;
        int8_t *yb = y + b * units;
        int32_t u = 0;
        for (; u + 3 < units; u += 4) {
            int32_t s[4] = {bias_of(p, u), bias_of(p, u + 1), bias_of(p, u + 2),
                            bias_of(p, u + 3)};
            khil_dot_4x1_direct(p->weights + u * k, xb, k, p->input_offset, s);
            yb[u] = fc_output(op, p, s[0], u, &layer);
            yb[u + 1] = fc_output(op, p, s[1], u + 1, &layer);
            yb[u + 2] = fc_output(op, p, s[2], u + 2, &layer);
            yb[u + 3] = fc_output(op, p, s[3], u + 3, &layer);
        }
        for (; u < units; u++) {
            const int32_t acc = khil_dot_1x1_direct(p->weights + u * k, xb, k, p->input_offset,
                                                    bias_of(p, u));
            yb[u] = fc_output(op, p, acc, u, &layer);
        }
    }
}

void khil_kernel_fully_connected(const khil_op *op, khil_tensor *t)
{
    const khil_fc_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    const int8_t *w = p->weights;
    int8_t *y = (int8_t *)t[op->out].data;
    const int32_t depth = p->accum_depth, units = p->output_depth;
    if (fc_packed(p)) {
        fc_packed_rows(op, p, x, y);
        return;
    }
    const fc_round32 layer = fc_round32_make(p, 0);

    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *xb = x + b * depth;
        for (int32_t u = 0; u < units; u++) {
            const int8_t *wu = w + u * depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < depth; d++) {
                acc += (wu[d] + p->filter_offset) * (xb[d] + p->input_offset);
            }
            y[b * units + u] = fc_output(op, p, acc + bias_of(p, u), u, &layer);
        }
    }
}
