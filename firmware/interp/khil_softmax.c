/* SOFTMAX int8 -> int8: LiteRT's reference_ops::Softmax (the path BUILTIN_REF takes): input
 * differences to the row maximum are rescaled to Q5.26, exponentiated with gemmlowp's
 * exp_on_negative_values, summed in Q12.19, and divided via one_over_one_plus_x. */
#include "khil_internal.h"
#include "khil_quant.h"

/* Compiled for size: one SOFTMAX of a few classes per inference (code size, issue 18). */
#pragma GCC optimize("Os")

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent. */
static inline int32_t sat_mul_pot(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(x) for x in [-1/4, 0), Q0.31 in and out. */
static int32_t exp_on_interval(int32_t a)
{
    const int32_t constant_term = 1895147668;    /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 */
    const int32_t x = a + (1 << 28);             /* x = a + 1/8 */
    const int32_t x2 = khil_srdhm(x, x);
    const int32_t x3 = khil_srdhm(x2, x);
    const int32_t x4 = khil_srdhm(x2, x2);
    const int32_t x4_over_4 = khil_rdbpot(x4, 2);
    const int32_t poly = khil_rdbpot(khil_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + khil_srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values for Q5.26 input, Q0.31 result. */
static int32_t exp_on_negative_values(int32_t a)
{
    const int frac_bits = 26;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = exp_on_interval(sat_mul_pot(a_mod_quarter_minus_one_quarter, 5));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    /* Barrel shifter: multiply by exp(-2^k) for each set bit of the remainder. */
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535,   720401,     242};
    for (int k = 0; k < 7; k++) {
        if (remainder & (1 << (frac_bits - 2 + k))) {
            result = khil_srdhm(result, multipliers[k]);
        }
    }
    /* Input integer bits are 5, so no clamp for values below -32 is needed. */
    return a == 0 ? INT32_MAX : result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Newton-Raphson, Q0.31 in and out. */
static int32_t one_over_one_plus_x(int32_t a)
{
    /* half_denominator = RoundingHalfSum(a, 1.0) */
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    int32_t x = constant_48_over_17 + khil_srdhm(half_denominator, constant_neg_32_over_17);
    for (int i = 0; i < 3; i++) {
        const int32_t half_denominator_times_x = khil_srdhm(half_denominator, x);
        const int32_t one_minus = (1 << 29) - half_denominator_times_x;
        x = x + sat_mul_pot(khil_srdhm(x, one_minus), 2);
    }
    return sat_mul_pot(x, 1);
}

static inline int32_t rescale_input(const khil_op *op, int32_t diff)
{
    const khil_softmax_params *p = op->params;
#ifdef KHIL_VARIANTS
    if (KHIL_OP_VARIANT(op) & KHIL_VARIANT_SINGLE_ROUNDING) {
        return khil_mbqm_single(diff, p->input_multiplier, p->input_left_shift);
    }
#endif
    return khil_mbqm_greater_than_one(diff, p->input_multiplier, p->input_left_shift);
}

static inline int count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

void khil_kernel_softmax(const khil_op *op, khil_tensor *t)
{
    const khil_softmax_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    int8_t *y = (int8_t *)t[op->out].data;
    const int32_t depth = p->depth;

    for (int32_t r = 0; r < p->outer; r++) {
        const int8_t *xr = x + r * depth;
        int8_t *yr = y + r * depth;
        int32_t max_in_row = -128;
        for (int32_t c = 0; c < depth; c++) {
            max_in_row = xr[c] > max_in_row ? xr[c] : max_in_row;
        }
        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; c++) {
            const int32_t diff = xr[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t e = exp_on_negative_values(rescale_input(op, diff));
                sum_of_exps += khil_rdbpot(e, 12); /* Rescale Q0.31 -> Q12.19 */
            }
        }
        /* GetReciprocal(sum, 12 integer bits) */
        const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        const int num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (1u << 31));
        const int32_t shifted_scale = one_over_one_plus_x(shifted_sum_minus_one);

        for (int32_t c = 0; c < depth; c++) {
            const int32_t diff = xr[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t e = exp_on_negative_values(rescale_input(op, diff));
                const int32_t unsat =
                    khil_rdbpot(khil_srdhm(shifted_scale, e), num_bits_over_unit + 31 - 8);
                int32_t v = unsat - 128;
                v = v < -128 ? -128 : (v > 127 ? 127 : v);
                yr[c] = (int8_t)v;
            } else {
                yr[c] = -128;
            }
        }
    }
}
