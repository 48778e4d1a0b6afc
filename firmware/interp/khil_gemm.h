/* Building blocks of the matrix kernels (CONV_2D as GEMM, FULLY_CONNECTED): int16 "columns"
 * of input values (input offset already added) laid out for dual 16-bit MACs, and dot products
 * of int8 weight rows with the int8 input.
 *
 * Each block of four values x[4i..4i+3] of a column is two words (x0, x2) and (x1, x3)
 * (bottom, top halves): the order in which SXTB16 widens a weight word and its 8-bit rotation,
 * so one weight word meets its inputs with two SMLADs and no shuffling. Sums are
 * order-independent integer sums, so the result is bit-identical to the reference loop. */
#ifndef KHIL_GEMM_H
#define KHIL_GEMM_H

#include <stdint.h>

#include "khil_simd.h"

/* Eight columns interleaved (CONV_2D's GEMM, K a multiple of 4): block i of column j is words
 * 16i+2j, 16i+2j+1, and holds the column's values doubled, 2 (x + offset) (|.| <= 510: the
 * doubled sums feed khil_rqd). */
static inline uint32_t khil_columns8_bytes(int32_t k)
{
    return 16u * (uint32_t)k;
}

/* Column j, positions k0 .. k0+n (both multiples of 4): 2 (src[i] + offset), off2 the offset in
 * both halves. */
static inline void khil_columns8_put(int16_t *col, int32_t j, int32_t k0, const int8_t *src,
                                     int32_t n, uint32_t off2)
{
    uint32_t *dst = (uint32_t *)(void *)col + 4 * k0 + 2 * j;
    for (int32_t i = 0; i < n; i += 4) {
        const uint32_t x = khil_ld32(src + i);
        const uint32_t x02 = khil_sxtab16(off2, x), x13 = khil_sxtab16_ror8(off2, x);
        dst[0] = khil_sadd16(x02, x02);
        dst[1] = khil_sadd16(x13, x13);
        dst += 16;
    }
}

static inline void khil_columns8_zero(int16_t *col, int32_t j, int32_t k0, int32_t n)
{
    uint32_t *dst = (uint32_t *)(void *)col + 4 * k0 + 2 * j;
    for (int32_t i = 0; i < n; i += 4) {
        dst[0] = 0;
        dst[1] = 0;
        dst += 16;
    }
}

/* s[r] += (row r of w, rows k apart) . (x + offset), r = 0..3, straight from the int8 input:
 * each input word is widened once for four weight rows (FULLY_CONNECTED). With the DSP
 * extension whole 16-value blocks run in an assembly loop (95 instructions per 64 MACs; the
 * loop end is read from memory to leave the registers to the sums and pointers), then one
 * 8-value block. */
static inline void khil_dot_4x1_direct(const int8_t *w, const int8_t *x, int32_t k,
                                       int32_t offset, int32_t *s)
{
    int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    const uint32_t off2 = khil_dup16(offset);
    const int8_t *end = x + (k & ~7);
#if KHIL_HAVE_MVE
    /* Helium: 16 int8 products per VMLADAVA; the input offset as offset * (sum of the weights)
     * (VADDVA), both exact in int32: w . (x + off) = w . x + off * sum(w). */
    (void)off2;
    const int8_t *end16 = x + (k & ~15);
    int32_t w0 = 0, w1 = 0, w2 = 0, w3 = 0; /* sums of the weights */
    for (; x != end16; x += 16, w += 16) {
        const int8x16_t xv = vld1q_s8(x);
        const int8x16_t a0 = vld1q_s8(w), a1 = vld1q_s8(w + k);
        const int8x16_t a2 = vld1q_s8(w + 2 * k), a3 = vld1q_s8(w + 3 * k);
        s0 = vmladavaq_s8(s0, a0, xv);
        s1 = vmladavaq_s8(s1, a1, xv);
        s2 = vmladavaq_s8(s2, a2, xv);
        s3 = vmladavaq_s8(s3, a3, xv);
        w0 = vaddvaq_s8(w0, a0);
        w1 = vaddvaq_s8(w1, a1);
        w2 = vaddvaq_s8(w2, a2);
        w3 = vaddvaq_s8(w3, a3);
    }
    s0 += offset * w0;
    s1 += offset * w1;
    s2 += offset * w2;
    s3 += offset * w3;
    for (int32_t t = 0; t < (k & 15); t++) {
        const int32_t xv = x[t] + offset;
        s0 += w[t] * xv;
        s1 += w[k + t] * xv;
        s2 += w[2 * k + t] * xv;
        s3 += w[3 * k + t] * xv;
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
    return;
#endif
#if KHIL_HAVE_DSP
    if (x != end) {
        const int8_t *w2 = w + 2 * k;
        const int8_t *end16 = x + (k & ~15);
        uint32_t xv, x13, a, b;
#define KHIL_FC_ROW(S, ADDR)                                                                       \
    "ldr     %[a], " ADDR "\n\t"                                                                  \
    "sxtb16  %[b], %[a]\n\t"                                                                      \
    "smlad   %[" S "], %[xv], %[b], %[" S "]\n\t"                                                 \
    "sxtb16  %[a], %[a], ror #8\n\t"                                                              \
    "smlad   %[" S "], %[x13], %[a], %[" S "]\n\t"
#define KHIL_FC_WORD                                                                               \
    "ldr     %[xv], [%[x]], #4\n\t"                                                               \
    "sxtab16 %[x13], %[off2], %[xv], ror #8\n\t"                                                  \
    "sxtab16 %[xv], %[off2], %[xv]\n\t" KHIL_FC_ROW("s1", "[%[w], %[k]]")                         \
        KHIL_FC_ROW("s0", "[%[w]], #4") KHIL_FC_ROW("s3", "[%[w2], %[k]]")                         \
            KHIL_FC_ROW("s2", "[%[w2]], #4")
        if (x != end16) { /* 16 values per iteration */
            __asm__("1:\n\t" KHIL_FC_WORD KHIL_FC_WORD KHIL_FC_WORD KHIL_FC_WORD
                    "ldr     %[a], %[end]\n\t"
                    "cmp     %[x], %[a]\n\t"
                    "bne     1b"
                    : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [w] "+r"(w),
                      [w2] "+r"(w2), [x] "+r"(x), [xv] "=&r"(xv), [x13] "=&r"(x13),
                      [a] "=&r"(a), [b] "=&r"(b)
                    : [end] "m"(end16), [k] "r"(k), [off2] "r"(off2),
                      "m"(*(const int8_t(*)[])w), "m"(*(const int8_t(*)[])x)
                    : "cc");
        }
        if (x != end) { /* the last 8 */
            __asm__(KHIL_FC_WORD KHIL_FC_WORD
                    : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [w] "+r"(w),
                      [w2] "+r"(w2), [x] "+r"(x), [xv] "=&r"(xv), [x13] "=&r"(x13),
                      [a] "=&r"(a), [b] "=&r"(b)
                    : [k] "r"(k), [off2] "r"(off2), "m"(*(const int8_t(*)[])w),
                      "m"(*(const int8_t(*)[])x));
        }
#undef KHIL_FC_WORD
#undef KHIL_FC_ROW
    }
#else
    while (x != end) {
        const uint32_t xv = khil_ld32(x);
        x += 4;
        const uint32_t x02 = khil_sxtab16(off2, xv), x13 = khil_sxtab16_ror8(off2, xv);
        const uint32_t a0 = khil_ld32(w), a1 = khil_ld32(w + k);
        const uint32_t a2 = khil_ld32(w + 2 * k), a3 = khil_ld32(w + 3 * k);
        w += 4;
        s0 = khil_smlad(khil_sxtb16_ror8(a0), x13, khil_smlad(khil_sxtb16(a0), x02, s0));
        s1 = khil_smlad(khil_sxtb16_ror8(a1), x13, khil_smlad(khil_sxtb16(a1), x02, s1));
        s2 = khil_smlad(khil_sxtb16_ror8(a2), x13, khil_smlad(khil_sxtb16(a2), x02, s2));
        s3 = khil_smlad(khil_sxtb16_ror8(a3), x13, khil_smlad(khil_sxtb16(a3), x02, s3));
    }
#endif
    for (int32_t t = 0; t < (k & 7); t++) {
        const int32_t xv = x[t] + offset;
        s0 += w[t] * xv;
        s1 += w[k + t] * xv;
        s2 += w[2 * k + t] * xv;
        s3 += w[3 * k + t] * xv;
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}

/* Returns s + w . (x + offset) over k values, straight from the int8 input. */
static inline int32_t khil_dot_1x1_direct(const int8_t *w, const int8_t *x, int32_t k,
                                          int32_t offset, int32_t s)
{
    const uint32_t off2 = khil_dup16(offset);
    const int8_t *end = x + (k & ~3);
    while (x != end) {
        const uint32_t xv = khil_ld32(x);
        const uint32_t a = khil_ld32(w);
        x += 4;
        w += 4;
        s = khil_smlad(khil_sxtb16(a), khil_sxtab16(off2, xv), s);
        s = khil_smlad(khil_sxtb16_ror8(a), khil_sxtab16_ror8(off2, xv), s);
    }
    for (int32_t t = 0; t < (k & 3); t++) {
        s += w[t] * (x[t] + offset);
    }
    return s;
}

#endif /* KHIL_GEMM_H */
