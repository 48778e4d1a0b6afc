/* Load-time derivation of fixed-point multipliers, reproducing LiteRT's float/double steps. */
#include "khil_quant.h"

#include <string.h>

#include "khil_internal.h"

double khil_frexp(double x, int *exponent)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff);
    if (e == 0x7ff || x == 0.0) { /* inf/nan/zero: returned unchanged with exponent 0 */
        *exponent = 0;
        return x;
    }
    int bias = 0;
    if (e == 0) { /* subnormal: scale into the normal range first (exact) */
        x *= 18014398509481984.0; /* 2^54 */
        memcpy(&bits, &x, sizeof bits);
        e = (int)((bits >> 52) & 0x7ff);
        bias = -54;
    }
    *exponent = e - 1022 + bias;
    bits = (bits & ~((uint64_t)0x7ff << 52)) | ((uint64_t)1022 << 52);
    memcpy(&x, &bits, sizeof bits);
    return x;
}

void khil_double_parts(double x, uint64_t *mant, int32_t *exp2)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    const int e = (int)((bits >> 52) & 0x7ff);
    const uint64_t frac = bits & ((1ull << 52) - 1);
    if (e == 0) { /* zero or subnormal */
        *mant = frac;
        *exp2 = -1074;
    } else {
        *mant = frac | (1ull << 52);
        *exp2 = e - 1075;
    }
}

double khil_round(double x)
{
    if (!(x > -9.0e18 && x < 9.0e18)) {
        return x; /* already integral (or nan) */
    }
    double t = (double)(int64_t)x; /* truncation towards zero */
    if (x >= 0.0) {
        if (x - t >= 0.5) {
            t += 1.0;
        }
    } else if (t - x >= 0.5) {
        t -= 1.0;
    }
    return t;
}

float khil_roundf(float x)
{
    if (!(x > -2.0e9f && x < 2.0e9f)) {
        return x;
    }
    float t = (float)(int32_t)x;
    if (x >= 0.0f) {
        if (x - t >= 0.5f) {
            t += 1.0f;
        }
    } else if (t - x >= 0.5f) {
        t -= 1.0f;
    }
    return t;
}

int khil_quantize_multiplier(double real, int32_t *multiplier, int *shift, int single_rounding)
{
    *multiplier = 0;
    *shift = 0;
    if (real == 0.0) {
        return 0;
    }
    if (!(real > 0.0 && real < 1.0e300)) {
        return -1;
    }
    int s;
    const double q = khil_frexp(real, &s);
    int64_t q_fixed = (int64_t)khil_round(q * (double)(1LL << 31));
    if (q_fixed == (1LL << 31)) {
        q_fixed /= 2;
        ++s;
    }
    if (s < -31) { /* everything would be shifted out: LiteRT makes it an exact zero */
        s = 0;
        q_fixed = 0;
    }
    if (single_rounding && s > 30) {
        s = 30;
        q_fixed = (1LL << 31) - 1;
    }
#ifdef KHIL_TEST_WRONG_SHIFT
    /* Test builds only (-DKHIL_TEST_WRONG_SHIFT=N): the N-th multiplier computed since boot
     * gets its shift off by one, one deliberately wrong requantisation that differential
     * tests must catch (tests/sim/test_compare_boards.py). Never in a normal build. */
    static int khil_test_multipliers;
    if (++khil_test_multipliers == (KHIL_TEST_WRONG_SHIFT)) {
        ++s;
    }
#endif
    *multiplier = (int32_t)q_fixed;
    *shift = s;
    return 0;
}

static int32_t quantize_activation(float x, float scale, int32_t zero_point)
{
    float q = khil_roundf(x / scale);
    /* Clamp before the conversion (out-of-range float to int is undefined in C); any value
     * this large saturates the int8 range the same way. */
    q = q > 1.0e6f ? 1.0e6f : (q < -1.0e6f ? -1.0e6f : q);
    return zero_point + (int32_t)q;
}

void khil_activation_range_int8(int activation, float scale, int32_t zero_point, int32_t *act_min,
                                int32_t *act_max)
{
    int32_t lo = -128, hi = 127;
    if (activation == KHIL_ACT_RELU) {
        int32_t z = quantize_activation(0.0f, scale, zero_point);
        lo = z > lo ? z : lo;
    } else if (activation == KHIL_ACT_RELU6) {
        int32_t z = quantize_activation(0.0f, scale, zero_point);
        int32_t six = quantize_activation(6.0f, scale, zero_point);
        lo = z > lo ? z : lo;
        hi = six < hi ? six : hi;
    } else if (activation == KHIL_ACT_RELU_N1_TO_1) {
        int32_t m1 = quantize_activation(-1.0f, scale, zero_point);
        int32_t p1 = quantize_activation(1.0f, scale, zero_point);
        lo = m1 > lo ? m1 : lo;
        hi = p1 < hi ? p1 : hi;
    }
    *act_min = lo;
    *act_max = hi;
}

uint32_t khil_rqo_pack4_one(const khil_rqo *q, int32_t a0, int32_t a1, int32_t a2, int32_t a3)
{
    return khil_rqo_pack4(q, 0, a0, a1, a2, a3);
}
