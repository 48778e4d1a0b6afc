/* Compares the interpreter's prepared requantisation (khil_rq_make/khil_rq_apply, the form with
 * the output offset folded in, khil_rqo_pack4, and the doubled-sum form, khil_rqd) with the
 * gemmlowp form (khil_mbqm) on every
 * shift, edge accumulators and random cases; prints the first mismatch and exits 1. Built and
 * run by test_interp_requant.py. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "khil_quant.h"

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint32_t next32(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)(state >> 16);
}

/* The folded form with an output offset, saturated (khil_rqo_pack4), where it applies. */
static int check_folded(int32_t acc, int32_t mult, int shift, int32_t offset)
{
    khil_rqo q;
    if (!khil_rqo_make(mult, shift, offset, &q)) {
        return 0;
    }
    const int64_t v = (int64_t)khil_mbqm(acc, mult, shift) + offset;
    const int32_t want = v < -128 ? -128 : (v > 127 ? 127 : (int32_t)v);
    const uint32_t word = khil_rqo_pack4(&q, 0, acc, 0, 0, acc);
    const int32_t got = (int8_t)(uint8_t)word, got3 = (int8_t)(uint8_t)(word >> 24);
    if (want != got || want != got3) {
        printf("acc=%ld mult=%ld shift=%d offset=%ld: mbqm+offset %ld, rqo %ld/%ld\n",
               (long)acc, (long)mult, shift, (long)offset, (long)want, (long)got, (long)got3);
        return 1;
    }
    return 0;
}

/* The doubled-sum form (khil_rqd), where it applies (|acc| < 2^30). */
static int check_doubled(int32_t acc, int32_t mult, int shift, int32_t offset)
{
    khil_rqd q;
    if (acc <= -(1 << 30) || acc >= (1 << 30) || !khil_rqd_make(mult, shift, offset, &q)) {
        return 0;
    }
    const int64_t v = (int64_t)khil_mbqm(acc, mult, shift) + offset;
    const int32_t want = v < -128 ? -128 : (v > 127 ? 127 : (int32_t)v);
    const int32_t got = khil_sat8(khil_rqd_apply(&q, 2 * acc));
    if (want != got) {
        printf("acc=%ld mult=%ld shift=%d offset=%ld: mbqm+offset %ld, rqd %ld\n", (long)acc,
               (long)mult, shift, (long)offset, (long)want, (long)got);
        return 1;
    }
    return 0;
}

static int check(int32_t acc, int32_t mult, int shift)
{
    const int32_t offset = (int32_t)(next32() % 256) - 128;
    if (check_folded(acc, mult, shift, offset) || check_folded(acc, mult, shift, -128) ||
        check_folded(acc, mult, shift, 127) || check_doubled(acc, mult, shift, offset) ||
        check_doubled(acc, mult, shift, -128) || check_doubled(acc, mult, shift, 127) ||
        check_doubled(acc >> 8, mult, shift, offset)) {
        return 1;
    }
    const khil_rq q = khil_rq_make(mult, shift);
    const int32_t want = khil_mbqm(acc, mult, shift);
    const int32_t got = khil_rq_apply(&q, acc);
    if (want != got) {
        printf("acc=%ld mult=%ld shift=%d: mbqm %ld, rq %ld\n", (long)acc, (long)mult, shift,
               (long)want, (long)got);
        return 1;
    }
    return 0;
}

/* khil_round32_apply, where it answers, against khil_mul_round_double. */
static long fast_answers;

static int check_double(int32_t acc, double scale)
{
    uint64_t mant;
    int32_t exp2;
    khil_double_parts(scale, &mant, &exp2);
    uint32_t m;
    int32_t got;
    if (!khil_round32_make(mant, exp2, &m) || !khil_round32_apply(acc, m, &got)) {
        return 0;
    }
    fast_answers++;
    const int32_t want = khil_mul_round_double(acc, mant, exp2);
    if (want != got) {
        printf("acc=%ld scale=%.17g: exact %ld, fast %ld\n", (long)acc, scale, (long)want,
               (long)got);
        return 1;
    }
    return 0;
}

static int check_doubles(long cases)
{
    for (long n = 0; n < cases; n++) {
        const int bits = (int)(next32() % 32);
        const int32_t acc = (int32_t)next32() >> bits;
        /* scales from 2^-40 to 2^4, random mantissas */
        const double scale = ldexp(1.0 + (double)next32() / 4294967296.0 +
                                       (double)next32() / 18446744073709551616.0,
                                   (int)(next32() % 45) - 40);
        if (check_double(acc, scale)) {
            return 1;
        }
        /* near ties: acc * scale within a few ulps of k + 0.5 */
        const int32_t small = (next32() & 1) ? (int32_t)(next32() % 200000) - 100000
                                              : (int32_t)(next32() % 2000) - 1000;
        if (small != 0) {
            const double k = (double)((int32_t)(next32() % 2000) - 1000) + 0.5;
            const double s = nextafter(k / (double)small, (next32() & 1) ? 1.0 : -1.0);
            if (s > 0.0 && (check_double(small, s) || check_double(small, k / (double)small))) {
                return 1;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const long cases = argc > 1 ? atol(argv[1]) : 1000000;
    const int32_t edge_acc[] = {0, 1, -1, 2, -2, 3, -3, INT32_MAX, INT32_MIN, INT32_MIN + 1,
                                INT32_MAX - 1, 1 << 20, -(1 << 20), 65535, -65536};
    const int32_t edge_mult[] = {0, 1 << 30, (1 << 30) + 1, INT32_MAX, 1518500250};
    for (int shift = -31; shift <= 0; shift++) {
        for (unsigned i = 0; i < sizeof edge_acc / sizeof edge_acc[0]; i++) {
            for (unsigned j = 0; j < sizeof edge_mult / sizeof edge_mult[0]; j++) {
                if (check(edge_acc[i], edge_mult[j], shift)) {
                    return 1;
                }
            }
        }
    }
    for (long n = 0; n < cases; n++) {
        /* accumulators of every magnitude, multipliers in QuantizeMultiplier's range */
        const int bits = (int)(next32() % 32);
        const int32_t acc = (int32_t)next32() >> bits;
        const int32_t mult = (int32_t)((1u << 30) | (next32() & 0x3fffffffu));
        /* shifts from 0 to -31, and up to +4 with accumulators that do not overflow */
        int shift = -(int)(next32() % 32);
        int32_t a = acc;
        if (next32() % 8 == 0) {
            shift = (int)(next32() % 5);
            a = acc >> 5;
        }
        if (check(a, mult, shift)) {
            return 1;
        }
    }
    /* ties: v = k * 2^r + 2^(r-1) exactly needs a*m + 2^30 in [v 2^31, (v+1) 2^31): take
     * m = 2^30 (v = round(a / 2)) so a odd/even sweeps every tie pattern for small r */
    for (int shift = -6; shift <= 0; shift++) {
        for (int32_t a = -5000; a <= 5000; a++) {
            if (check(a, 1 << 30, shift) || check(a, (1 << 30) + (1 << 29), shift)) {
                return 1;
            }
        }
    }
    if (check_doubles(cases / 4)) {
        return 1;
    }
    if (fast_answers < cases / 8) { /* the fast path must actually answer most cases */
        printf("fast path answered only %ld cases\n", fast_answers);
        return 1;
    }
    printf("ok (fast path answered %ld of the scale cases)\n", fast_answers);
    return 0;
}
