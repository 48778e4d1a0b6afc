/* Fixed-point arithmetic of TFLite's integer kernels (the gemmlowp forms), and the load-time
 * derivation of multipliers. Run-time helpers are integer-only; the load-time ones use the
 * same double/float steps as LiteRT so that multipliers come out bit-identical. */
#ifndef KHIL_QUANT_H
#define KHIL_QUANT_H

#include <stdint.h>

/* Arithmetic variants, selectable only in the host build (-DKHIL_VARIANTS): used as an
 * instrument to find which arithmetic step makes other runtimes differ
 * (docs/firmware-interpreter.md). */
enum {
    /* TFLITE_SINGLE_ROUNDING: requantise with one rounding of acc * multiplier. */
    KHIL_VARIANT_SINGLE_ROUNDING = 1u << 0,
    /* FULLY_CONNECTED requantised with MultiplyByQuantizedMultiplier (TFLite Micro, LiteRT's
     * optimised kernels) instead of LiteRT reference's round(double(acc) * double scale). */
    KHIL_VARIANT_FC_FIXED_POINT = 1u << 1,
    /* Effective scale from the input*filter scale product taken in float (older TFLite). */
    KHIL_VARIANT_FLOAT_SCALE_PRODUCT = 1u << 2,
    /* XNNPACK's "fp32" requantisation: float(acc) * float scale, rounded half to even. */
    KHIL_VARIANT_FP32_REQUANT = 1u << 3,
    /* Requantisation's final right shift rounds ties towards +infinity (ARM VRSHL, used by
     * LiteRT's optimised kernels) instead of away from zero. */
    KHIL_VARIANT_SHIFT_TIES_UP = 1u << 4
};

/* gemmlowp SaturatingRoundingDoublingHighMul. */
static inline int32_t khil_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31)); /* C division truncates, as gemmlowp's */
}

/* gemmlowp RoundingDivideByPOT: round half away from zero; exponent in [0, 31]. */
static inline int32_t khil_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier, double-rounding form (the default build). */
static inline int32_t khil_mbqm(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return khil_rdbpot(khil_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* TFLite MultiplyByQuantizedMultiplier with TFLITE_SINGLE_ROUNDING. */
static inline int32_t khil_mbqm_single(int32_t x, int32_t multiplier, int shift)
{
    const int total_shift = 31 - shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)x * multiplier + round) >> total_shift);
}

/* MultiplyByQuantizedMultiplierSmallerThanOneExp (double rounding). */
static inline int32_t khil_mbqm_smaller_than_one(int32_t x, int32_t multiplier, int left_shift)
{
    return khil_rdbpot(khil_srdhm(x, multiplier), -left_shift);
}

/* MultiplyByQuantizedMultiplierGreaterThanOne (double rounding). */
static inline int32_t khil_mbqm_greater_than_one(int32_t x, int32_t multiplier, int left_shift)
{
    return khil_srdhm((int32_t)((uint32_t)x << left_shift), multiplier);
}

/* khil_mbqm for a multiplier >= 0 (all QuantizeMultiplier gives for positive scales), with the
 * shift's parts prepared once per channel: a few instructions instead of a 64-bit division.
 * SaturatingRoundingDoublingHighMul with b >= 0 cannot overflow, and its nudge-and-truncate
 * equals floor((a*b + 2^30) / 2^31) for either sign of a*b. RoundingDivideByPOT by r >= 1
 * (ties away from zero) of that v is floor((v + 2^(r-1) - [v < 0]) / 2^r), and the two floors
 * of divisions compose into one: floor((a*b + 2^30 + 2^(30+r) - [v < 0] 2^31) / 2^(31+r)), a
 * 64-bit sum whose high word shifted by r - 1 is the result. [v < 0] may be taken as [a < 0]:
 * they differ only when a < 0 and v = 0, where both forms give 0 for r >= 1. Checked equal to
 * khil_mbqm on random and edge cases (tests/firmware/test_interp_requant.py). */
typedef struct {
    int32_t mult;
    int32_t left;      /* shift > 0: acc << left, then no rounding shift (right = 0) */
    int32_t right;
    uint32_t round_lo; /* 2^30 + 2^(30+right), right >= 1, as two words */
    int32_t round_hi;
    int32_t hi_shift;  /* right - 1: the high word's shift */
} khil_rq;

static inline khil_rq khil_rq_make(int32_t mult, int shift)
{
    khil_rq q;
    q.mult = mult;
    q.left = shift > 0 ? shift : 0;
    q.right = shift > 0 ? 0 : -shift;
    /* 32-bit forms of the 64-bit constant (right <= 31): 2^(30+right) is 2^31 in the low word
     * for right = 1, else 2^(right-2) in the high word. */
    const int32_t r = q.right > 0 ? q.right : 1;
    q.round_lo = 0x40000000u + (0x80000000u << (r - 1));
    q.round_hi = (int32_t)((1u << r) >> 2);
    q.hi_shift = r - 1;
    return q;
}

/* khil_rq_apply for q->right >= 1 (scales below 0.5), without the test, for loops that check
 * it once. */
static inline int32_t khil_rq_apply_right(const khil_rq *q, int32_t acc)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    /* SMULL and 64-bit adds: GCC hoists the multiplier's sign extension out of kernel loops
     * and then computes the product with three multiplies instead of SMULL. */
    uint32_t lo, neg;
    int32_t hi;
    __asm__("smull %0, %1, %3, %4\n\t"
            "adds  %0, %0, %5\n\t"
            "adc   %1, %1, %6\n\t"
            "asr   %2, %3, #31\n\t"
            "adds  %0, %0, %2, lsl #31\n\t"
            "adc   %1, %1, %2"
            : "=&r"(lo), "=&r"(hi), "=&r"(neg)
            : "r"(acc), "r"(q->mult), "r"(q->round_lo), "r"(q->round_hi)
            : "cc");
    (void)lo;
    return hi >> q->hi_shift;
#else
    const int64_t round = (int64_t)(((uint64_t)(uint32_t)q->round_hi << 32) | q->round_lo);
    const int64_t p = (int64_t)acc * q->mult + round - (acc < 0 ? (1LL << 31) : 0);
    return (int32_t)(p >> (31 + q->right));
#endif
}

static inline int32_t khil_rq_apply(const khil_rq *q, int32_t acc)
{
    if (q->right == 0) { /* scale >= 0.5: only the high-mul's rounding */
        const int64_t p = (int64_t)(int32_t)((uint32_t)acc << q->left) * q->mult;
        return (int32_t)((p + (1LL << 30)) >> 31);
    }
    return khil_rq_apply_right(q, acc);
}

/* khil_rq_apply_right plus the output offset, saturated to int8, for right in [1, 24]: the
 * offset is folded into the rounding constant (floor((P + C) / D) + off = floor((P + C + off D)
 * / D) with D = 2^(31+right); off D stays below 2^62 and its high word fits in 32 bits for
 * right <= 24). Four words per channel, read by the kernels' assembly in this order. */
typedef struct {
    int32_t mult;
    uint32_t round_lo;
    int32_t round_hi;
    int32_t hi_shift;
} khil_rqo;

/* Returns 0 (and leaves *q alone) when the shift is outside the folded form's range. */
static inline int khil_rqo_make(int32_t mult, int shift, int32_t offset, khil_rqo *q)
{
    if (shift > -1 || shift < -24) {
        return 0;
    }
    const khil_rq r = khil_rq_make(mult, shift);
    q->mult = mult;
    q->round_lo = r.round_lo;
    q->round_hi = r.round_hi + (int32_t)((uint32_t)offset << r.hi_shift);
    q->hi_shift = r.hi_shift;
    return 1;
}

static inline int32_t khil_sat8(int32_t v)
{
    return v < -128 ? -128 : (v > 127 ? 127 : v);
}

/* khil_mbqm plus the output offset of a sum given doubled (s2 = 2 acc, as the kernels that
 * double their weights or inputs accumulate it), for shifts -22..-1, multipliers >= 0 and
 * |acc| < 2^30 (the kernels check their sums' bound): SaturatingRoundingDoublingHighMul(acc, m)
 * = floor((acc m + 2^30) / 2^31) = floor((s2 m + 2^31) / 2^32), one SMMULR; RoundingDivideByPOT
 * by r (ties away from zero) of that v is floor((v - [v < 0] + 2^(r-1)) / 2^r), and the offset
 * joins the rounding constant as off 2^r (|round| < 2^30, so v + round fits in 32 bits). Five
 * instructions instead of khil_rqo's eight. Checked equal to khil_mbqm + offset
 * (tests/firmware/khil_requant_check.c). */
typedef struct {
    int32_t mult;
    int32_t round; /* 2^(r-1) + offset 2^r */
    int32_t shift; /* r */
} khil_rqd;

/* Returns 0 (and leaves *q alone) where the form does not apply. */
static inline int khil_rqd_make(int32_t mult, int shift, int32_t offset, khil_rqd *q)
{
    if (shift > -1 || shift < -22 || mult < 0 || offset < -128 || offset > 127) {
        return 0;
    }
    q->mult = mult;
    q->shift = -shift;
    q->round = (int32_t)((1u << (q->shift - 1)) + ((uint32_t)offset << q->shift));
    return 1;
}

/* The requantised value plus the offset (not yet saturated) of the doubled sum s2. */
static inline int32_t khil_rqd_apply(const khil_rqd *q, int32_t s2)
{
    int32_t v = (int32_t)(((int64_t)s2 * q->mult + 0x80000000LL) >> 32); /* SMMULR */
    return (v - (v < 0 ? 1 : 0) + q->round) >> q->shift;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* One output of khil_rqo_pack4 (acc in A is replaced by the result in V). */
#define KHIL_RQO_ONE(A, V)                                                                         \
    "smull   %[lo], %[hi], %[" A "], %[m]\n\t"                                                    \
    "adds    %[lo], %[lo], %[rl]\n\t"                                                             \
    "adc     %[hi], %[hi], %[rh]\n\t"                                                             \
    "asr     %[t], %[" A "], #31\n\t"                                                             \
    "adds    %[lo], %[lo], %[t], lsl #31\n\t"                                                     \
    "adc     %[hi], %[hi], %[t]\n\t"                                                              \
    "asr     %[hi], %[hi], %[sh]\n\t"                                                             \
    "ssat    %[" V "], #8, %[hi]\n\t"
#endif

/* Four accumulators of one channel (q) or of four channels (q[0..3], `four` set), requantised
 * with the offset, saturated to int8 and packed, result j in byte j. */
static inline uint32_t khil_rqo_pack4(const khil_rqo *q, int four, int32_t a0, int32_t a1,
                                      int32_t a2, int32_t a3)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    uint32_t lo, t;
    int32_t hi, m, rh, sh;
    uint32_t rl;
    if (!four) { /* one parameter block for the four */
        __asm__("ldrd    %[m], %[rl], [%[q]]\n\t"
                "ldrd    %[rh], %[sh], [%[q], #8]\n\t" KHIL_RQO_ONE("a0", "a0")
                    KHIL_RQO_ONE("a1", "a1") KHIL_RQO_ONE("a2", "a2") KHIL_RQO_ONE("a3", "a3")
                "and     %[a0], %[a0], #255\n\t"
                "bfi     %[a0], %[a1], #8, #8\n\t"
                "bfi     %[a0], %[a2], #16, #8\n\t"
                "bfi     %[a0], %[a3], #24, #8"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [lo] "=&r"(lo),
                  [hi] "=&r"(hi), [t] "=&r"(t), [m] "=&r"(m), [rl] "=&r"(rl), [rh] "=&r"(rh),
                  [sh] "=&r"(sh)
                : [q] "r"(q)
                : "cc", "memory");
        return (uint32_t)a0;
    }
    const int32_t step = (int32_t)sizeof(khil_rqo);
    __asm__("ldrd    %[m], %[rl], [%[q]]\n\t"
            "ldrd    %[rh], %[sh], [%[q], #8]\n\t" KHIL_RQO_ONE("a0", "a0")
            "add     %[q], %[q], %[step]\n\t"
            "ldrd    %[m], %[rl], [%[q]]\n\t"
            "ldrd    %[rh], %[sh], [%[q], #8]\n\t" KHIL_RQO_ONE("a1", "a1")
            "add     %[q], %[q], %[step]\n\t"
            "ldrd    %[m], %[rl], [%[q]]\n\t"
            "ldrd    %[rh], %[sh], [%[q], #8]\n\t" KHIL_RQO_ONE("a2", "a2")
            "add     %[q], %[q], %[step]\n\t"
            "ldrd    %[m], %[rl], [%[q]]\n\t"
            "ldrd    %[rh], %[sh], [%[q], #8]\n\t" KHIL_RQO_ONE("a3", "a3")
            "and     %[a0], %[a0], #255\n\t"
            "bfi     %[a0], %[a1], #8, #8\n\t"
            "bfi     %[a0], %[a2], #16, #8\n\t"
            "bfi     %[a0], %[a3], #24, #8"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [lo] "=&r"(lo),
              [hi] "=&r"(hi), [t] "=&r"(t), [m] "=&r"(m), [rl] "=&r"(rl), [rh] "=&r"(rh),
              [sh] "=&r"(sh), [q] "+r"(q)
            : [step] "r"(step)
            : "cc", "memory");
    return (uint32_t)a0;
#else
    const int32_t a[4] = {a0, a1, a2, a3};
    uint32_t word = 0;
    for (int j = 0; j < 4; j++) {
        const khil_rqo *c = four ? q + j : q;
        const int64_t round = (int64_t)(((uint64_t)(uint32_t)c->round_hi << 32) | c->round_lo);
        const int64_t p = (int64_t)a[j] * c->mult + round - (a[j] < 0 ? (1LL << 31) : 0);
        word |= (uint32_t)(uint8_t)khil_sat8((int32_t)(p >> (32 + c->hi_shift))) << (8 * j);
    }
    return word;
#endif
}

/* khil_rqo_pack4 of one channel's four accumulators, as a function (one copy of the code for
 * the kernels that use it outside their innermost loops). */
uint32_t khil_rqo_pack4_one(const khil_rqo *q, int32_t a0, int32_t a1, int32_t a2, int32_t a3);

/* Per-channel requantisation of an accumulator in the arithmetic LiteRT's kernels use. */
static inline int32_t khil_requant(int32_t acc, int32_t multiplier, int shift, uint32_t variant)
{
#ifdef KHIL_VARIANTS
    if (variant & KHIL_VARIANT_SINGLE_ROUNDING) {
        return khil_mbqm_single(acc, multiplier, shift);
    }
    if ((variant & KHIL_VARIANT_SHIFT_TIES_UP) && shift < 0) {
        const int64_t r = khil_srdhm(acc, multiplier);
        return (int32_t)((r + (1LL << (-shift - 1))) >> -shift);
    }
#else
    (void)variant;
#endif
    return khil_mbqm(acc, multiplier, shift);
}

static inline int khil_bit_length64(uint64_t x)
{
#if defined(__GNUC__)
    return x ? 64 - __builtin_clzll(x) : 0;
#else
    int n = 0;
    while (x) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* static_cast<int32_t>(round(double(acc) * scale)) for scale = mant * 2^exp2 (as split by
 * khil_double_parts), in integers: the exact product is rounded to 53 significant bits
 * (round-half-even, as the double multiply does), then to an integer half away from zero. */
static inline int32_t khil_mul_round_double(int32_t acc, uint64_t mant, int32_t exp2)
{
    if (acc == 0 || mant == 0) {
        return 0;
    }
    const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    /* p = a * mant < 2^84, as phi:plo */
    const uint64_t lo_part = (uint64_t)a * (uint32_t)mant;
    const uint64_t hi_part = (uint64_t)a * (uint32_t)(mant >> 32);
    const uint64_t plo = lo_part + (hi_part << 32);
    const uint64_t phi = (hi_part >> 32) + (plo < lo_part ? 1u : 0u);
    const int length = phi ? 64 + khil_bit_length64(phi) : khil_bit_length64(plo);
    int k = length - 53;
    uint64_t q;
    if (k <= 0) {
        q = plo;
        k = 0;
    } else { /* 1 <= k <= 31 */
        q = (plo >> k) | (phi << (64 - k));
        const uint64_t rem = plo & ((1ull << k) - 1);
        const uint64_t half = 1ull << (k - 1);
        if (rem > half || (rem == half && (q & 1))) {
            q++;
        }
    }
    const int e = k + exp2;
    uint64_t mag;
    if (e >= 0) {
        mag = (e > 31 || q > (0x7fffffffull >> e)) ? 0x7fffffffull : q << e;
    } else if (-e > 62) {
        mag = 0;
    } else {
        mag = (q + (1ull << (-e - 1))) >> -e;
        mag = mag > 0x7fffffffull ? 0x7fffffffull : mag;
    }
    return acc < 0 ? -(int32_t)mag : (int32_t)mag;
}

/* khil_mul_round_double where the answer is certain from 32 bits of the scale: for a scale
 * mant * 2^exp2 with exp2 <= -53 (below 2^0 with 32 fraction bits to spare), m = mant >> sh,
 * sh = -(exp2 + 32), puts the product in fixed point with 32 fraction bits: u = |acc| * m. The
 * exact product lies in [u, u + |acc|) (units 2^-32), the double multiply moves it by at most
 * 2^10 + 1 (a relative 2^-53 of a value below 2^31), so its rounding to an integer (half away
 * from zero) is u's unless u's fraction lies that close to one half. One UMULL instead of the
 * 85-bit product. Checked against khil_mul_round_double (tests/firmware/khil_requant_check.c).
 * khil_round32_make returns 0 where the form does not apply. */
static inline int khil_round32_make(uint64_t mant, int32_t exp2, uint32_t *m)
{
    if (mant < (1ull << 52) || exp2 > -53 || exp2 < -84) {
        return 0;
    }
    *m = (uint32_t)(mant >> -(exp2 + 32));
    return 1;
}

/* Returns 1 and sets *out, or 0 (the caller then takes khil_mul_round_double). */
static inline int khil_round32_apply(int32_t acc, uint32_t m, int32_t *out)
{
    const uint32_t err = 1025u;
    const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    const uint64_t u = (uint64_t)a * m;
    const uint32_t q = (uint32_t)(u >> 32), frac = (uint32_t)u;
    if (q >= 0x7ffffffeu || a >= 0x80000000u - err) {
        return 0;
    }
    uint32_t r;
    if (frac < 0x80000000u - a - err) {
        r = q;
    } else if (frac >= 0x80000000u + err) {
        r = q + 1u;
    } else {
        return 0;
    }
    *out = acc < 0 ? -(int32_t)r : (int32_t)r;
    return 1;
}

#ifdef KHIL_VARIANTS
/* Round half to even of a float below 2^22 in magnitude (host investigation builds only). */
static inline int32_t khil_rint_f32(float v)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    volatile float t = v + magic;
    return (int32_t)(t - magic);
}

/* XNNPACK-style requantisation: clamp in float, then round half to even. */
static inline int32_t khil_requant_fp32(int32_t acc, float scale, int32_t zero_point,
                                        int32_t act_min, int32_t act_max)
{
    float v = (float)acc * scale;
    const float lo = (float)(act_min - zero_point), hi = (float)(act_max - zero_point);
    v = v < lo ? lo : (v > hi ? hi : v);
    return khil_rint_f32(v) + zero_point;
}
#endif

/* ---- load time (float/double, as LiteRT) ---- */

/* std::frexp for finite doubles, bit-exact. */
double khil_frexp(double x, int *exponent);
/* std::round (half away from zero) for double and float. */
double khil_round(double x);
float khil_roundf(float x);
/* Splits a finite double x >= 0 into x = mant * 2^exp2, mant an integer below 2^53. */
void khil_double_parts(double x, uint64_t *mant, int32_t *exp2);
/* TFLite QuantizeMultiplier; single_rounding applies TFLITE_SINGLE_ROUNDING's clamp.
 * Returns 0, or -1 (multiplier 0) when real is negative, NaN or infinite. */
int khil_quantize_multiplier(double real, int32_t *multiplier, int *shift, int single_rounding);
/* Whether a quantisation scale is usable: positive and finite. */
static inline int khil_scale_ok(float s)
{
    return s > 0.0f && s < 3.0e38f;
}
/* TFLite CalculateActivationRangeQuantized for int8 outputs. */
void khil_activation_range_int8(int activation, float scale, int32_t zero_point, int32_t *act_min,
                                int32_t *act_max);

#endif /* KHIL_QUANT_H */
