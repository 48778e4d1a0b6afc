/* ADD int8: LiteRT's reference_integer_ops::AddFunc per element, with NumPy-style broadcasting
 * (BroadcastAdd6DSlow visits the same pairs). */
#include "khil_internal.h"
#include "khil_quant.h"
#include "khil_simd.h"

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

/* (Not inlined, compiled for size: small and broadcast ADDs only; code size.) */
static __attribute__((noinline, optimize("Os"))) int8_t
add_one(const khil_add_params *p, const khil_op *op, int32_t a, int32_t b)
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

#if KHIL_HAVE_MVE
/* MultiplyByQuantizedMultiplierSmallerThanOneExp of four values (shift <= 0): VQRDMULH is
 * gemmlowp's SaturatingRoundingDoublingHighMul, RoundingDivideByPOT (ties away from zero) is
 * VRSHL (ties up) of the value minus 1 where it is negative. */
static inline int32x4_t mve_scale_down(int32x4_t v, int32_t multiplier, int32_t shift)
{
    v = vqrdmulhq_n_s32(v, multiplier);
    if (shift < 0) {
        v = vrshlq_n_s32(vqaddq_s32(v, vshrq_n_s32(v, 31)), shift);
    }
    return v;
}

/* Helium, same-shape inputs: add_one's arithmetic four elements per vector (int32 lanes), the
 * last step predicated; no tables. */
static void add_mve(const khil_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    /* the parameters in locals: the loop's stores could alias *p otherwise */
    const int32_t off1 = p->input1_offset, off2 = p->input2_offset, left = p->left_shift;
    const int32_t m1 = p->input1_multiplier, sh1 = p->input1_shift;
    const int32_t m2 = p->input2_multiplier, sh2 = p->input2_shift;
    const int32_t mo = p->output_multiplier, sho = p->output_shift, out = p->output_offset;
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    const uint32_t n = p->elems;
    for (uint32_t i = 0; i < n; i += 4) {
        const mve_pred16_t m = vctp32q(n - i);
        const int32x4_t sa = vshlq_r_s32(vaddq_n_s32(vldrbq_z_s32(a + i, m), off1), left);
        const int32x4_t sb = vshlq_r_s32(vaddq_n_s32(vldrbq_z_s32(b + i, m), off2), left);
        int32x4_t v = vaddq_s32(mve_scale_down(sa, m1, sh1), mve_scale_down(sb, m2, sh2));
        v = vaddq_n_s32(mve_scale_down(v, mo, sho), out);
        vstrbq_p_s32(y + i, vminq_s32(vmaxq_s32(v, lo), hi), m);
    }
}
#else
/* Same-shape inputs of at least this many elements take lookup tables: an input's rescaled
 * value depends only on its int8 value, so its 256 possible values are rescaled once per
 * inference (exactly as add_one does) instead of once per element. The tables (2 KiB) live on
 * the stack, not in the arena: they are needed only during the op. */
enum { ADD_TABLE_MIN_ELEMS = 256 };

/* Same-shape inputs through the tables; the output's requantisation with the offset folded in
 * (khil_rqo), four elements at a time, where its shift allows and no variant is selected. */
static void add_with_tables(const khil_op *op, const khil_add_params *p, const int8_t *a,
                            const int8_t *b, int8_t *y)
{
    int32_t t1[256], t2[256];
    (void)op; /* only its variant bits, in the host investigation build */
    const uint32_t variant = KHIL_OP_VARIANT(op);
    for (int32_t v = -128; v < 128; v++) {
        const int32_t s1 = (int32_t)((uint32_t)(v + p->input1_offset) << p->left_shift);
        const int32_t s2 = (int32_t)((uint32_t)(v + p->input2_offset) << p->left_shift);
        t1[v + 128] = scale_down(s1, p->input1_multiplier, p->input1_shift, variant);
        t2[v + 128] = scale_down(s2, p->input2_multiplier, p->input2_shift, variant);
    }
    const uint32_t n = p->elems;
    khil_rqo ro;
    uint32_t i = 0;
    if (variant == 0 && khil_rqo_make(p->output_multiplier, p->output_shift, p->output_offset, &ro)) {
        const uint32_t lo4 = khil_dup8(p->act_min), hi4 = khil_dup8(p->act_max);
        for (; i + 4 <= n; i += 4) {
            const uint32_t va = khil_ld32(a + i), vb = khil_ld32(b + i);
            /* byte j of the words, as an unsigned table index (int8 value + 128) */
            const int32_t s0 = t1[(uint8_t)(va ^ 0x80u)] + t2[(uint8_t)(vb ^ 0x80u)];
            const int32_t s1 = t1[(uint8_t)((va >> 8) ^ 0x80u)] + t2[(uint8_t)((vb >> 8) ^ 0x80u)];
            const int32_t s2 =
                t1[(uint8_t)((va >> 16) ^ 0x80u)] + t2[(uint8_t)((vb >> 16) ^ 0x80u)];
            const int32_t s3 = t1[(va >> 24) ^ 0x80u] + t2[(vb >> 24) ^ 0x80u];
            khil_st32(y + i, khil_smin8(khil_smax8(khil_rqo_pack4_one(&ro, s0, s1, s2, s3), lo4),
                                        hi4));
        }
    }
    for (; i < n; i++) {
        int32_t v = scale_down(t1[a[i] + 128] + t2[b[i] + 128], p->output_multiplier,
                               p->output_shift, variant) +
                    p->output_offset;
        v = v < p->act_min ? p->act_min : (v > p->act_max ? p->act_max : v);
        y[i] = (int8_t)v;
    }
}

#endif /* KHIL_HAVE_MVE */

void khil_kernel_add(const khil_op *op, khil_tensor *t)
{
    const khil_add_params *p = op->params;
    const int8_t *a = (const int8_t *)t[op->in[0]].data;
    const int8_t *b = (const int8_t *)t[op->in[1]].data;
    int8_t *y = (int8_t *)t[op->out].data;

    if (p->ndim == 0) {
#if KHIL_HAVE_MVE
        add_mve(p, a, b, y);
        return;
#else
        if (p->elems >= ADD_TABLE_MIN_ELEMS) {
            add_with_tables(op, p, a, b, y);
            return;
        }
        for (uint32_t i = 0; i < p->elems; i++) {
            y[i] = add_one(p, op, a[i], b[i]);
        }
        return;
#endif
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
