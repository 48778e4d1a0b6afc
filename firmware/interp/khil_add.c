/* ADD int8: LiteRT's reference_integer_ops::AddFunc per element, with NumPy-style broadcasting
 * (BroadcastAdd6DSlow visits the same pairs). */
#include "khil_internal.h"
#include "khil_quant.h"

static inline int32_t scale_down(int32_t x, int32_t multiplier, int32_t shift, uint32_t variant)
{
#ifdef KHIL_VARIANTS
    if (variant & KHIL_VARIANT_SINGLE_ROUNDING) {
        return khil_mbqm_single(x, multiplier, shift);
    }
#else
    (void)variant;
#endif
    return khil_mbqm_smaller_than_one(x, multiplier, shift);
}

static inline int8_t add_one(const khil_add_params *p, const khil_op *op, int32_t a, int32_t b)
{
    (void)op;
    const int32_t sa = (int32_t)((uint32_t)(a + p->input1_offset) << p->left_shift);
    const int32_t sb = (int32_t)((uint32_t)(b + p->input2_offset) << p->left_shift);
    const int32_t ra = scale_down(sa, p->input1_multiplier, p->input1_shift, KHIL_OP_VARIANT(op));
    const int32_t rb = scale_down(sb, p->input2_multiplier, p->input2_shift, KHIL_OP_VARIANT(op));
    int32_t v = scale_down(ra + rb, p->output_multiplier, p->output_shift, KHIL_OP_VARIANT(op)) +
                p->output_offset;
    v = v < p->act_min ? p->act_min : (v > p->act_max ? p->act_max : v);
    return (int8_t)v;
}

void khil_kernel_add(const khil_op *op, khil_tensor *t)
{
    const khil_add_params *p = op->params;
    const int8_t *a = (const int8_t *)t[op->in[0]].data;
    const int8_t *b = (const int8_t *)t[op->in[1]].data;
    int8_t *y = (int8_t *)t[op->out].data;

    if (p->ndim == 0) {
        for (uint32_t i = 0; i < p->elems; i++) {
            y[i] = add_one(p, op, a[i], b[i]);
        }
        return;
    }
    const int nd = p->ndim;
    int32_t idx[KHIL_MAX_DIMS] = {0};
    int32_t oa = 0, ob = 0;
    for (uint32_t i = 0; i < p->elems; i++) {
        y[i] = add_one(p, op, a[oa], b[ob]);
        for (int d = nd - 1; d >= 0; d--) { /* odometer increment of the output index */
            oa += p->stride1[d];
            ob += p->stride2[d];
            if (++idx[d] < p->out_dims[d]) {
                break;
            }
            oa -= p->stride1[d] * idx[d];
            ob -= p->stride2[d] * idx[d];
            idx[d] = 0;
        }
    }
}
