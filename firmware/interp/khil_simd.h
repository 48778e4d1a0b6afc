/* Packed 16-bit SIMD primitives of the Armv7E-M DSP extension (Cortex-M4, M7, M33, M55), as
 * ACLE intrinsics from the compiler's arm_acle.h where __ARM_FEATURE_DSP is set, and as
 * portable C with the same results elsewhere. The kernels are written once in terms of these,
 * so the host build runs (and the host tests check) exactly the algorithm the MCU runs.
 *
 * A word holds four int8 (bytes 0..3) or two int16 (bits 0..15 "bottom", 16..31 "top"). */
#ifndef KHIL_SIMD_H
#define KHIL_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define KHIL_HAVE_DSP 1
#else
#define KHIL_HAVE_DSP 0
#endif

/* Helium (M-profile Vector Extension, integer): the Cortex-M55 build (mps3-an547, compiled with
 * the FP/vector registers: -mfloat-abi=softfp). Kernels with an MVE path use it instead of
 * their DSP-extension one. */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define KHIL_HAVE_MVE 1
#else
#define KHIL_HAVE_MVE 0
#endif

/* Unaligned 32-bit load/store (single LDR/STR on Armv7-M). */
static inline uint32_t khil_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void khil_st32(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

static inline uint32_t khil_ror8(uint32_t x)
{
    return (x >> 8) | (x << 24);
}

#if KHIL_HAVE_DSP

/* (int16)byte0 | (int16)byte2 << 16 */
static inline uint32_t khil_sxtb16(uint32_t x)
{
    return (uint32_t)__sxtb16((int32_t)x);
}

/* sxtb16(ror(x, 8)): bytes 1 and 3 (one instruction: SXTB16 with rotation) */
static inline uint32_t khil_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* a + sxtb16(ror(x, 8)), halfwise */
static inline uint32_t khil_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* a + sxtb16(x), halfwise */
static inline uint32_t khil_sxtab16(uint32_t a, uint32_t x)
{
    return (uint32_t)__sxtab16((int32_t)a, (int32_t)x);
}

/* acc + a.bottom * b.bottom + a.top * b.top */
static inline int32_t khil_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int32_t)a, (int32_t)b, acc);
}

/* a + b, halfwise (no saturation) */
static inline uint32_t khil_sadd16(uint32_t a, uint32_t b)
{
    return (uint32_t)__sadd16((int16x2_t)a, (int16x2_t)b);
}

/* acc + a.bottom * b.bottom */
static inline int32_t khil_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabb((int32_t)a, (int32_t)b, acc);
}

/* acc + a.top * b.top */
static inline int32_t khil_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlatt((int32_t)a, (int32_t)b, acc);
}

/* Bytewise signed max(a, b) and min(a, b): SSUB8 sets one GE flag per byte, SEL picks (one
 * asm block: the compiler does not track the GE flags between statements). */
static inline uint32_t khil_smax8(uint32_t a, uint32_t b)
{
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\t"
            "sel   %0, %2, %3"
            : "=r"(r), "=&r"(t)
            : "r"(a), "r"(b));
    return r;
}

static inline uint32_t khil_smin8(uint32_t a, uint32_t b)
{
    uint32_t r, t;
    __asm__("ssub8 %1, %3, %2\n\t"
            "sel   %0, %2, %3"
            : "=r"(r), "=&r"(t)
            : "r"(a), "r"(b));
    return r;
}

#else /* portable C, bit-identical */

static inline int32_t khil_bottom16(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x & 0xffffu);
}

static inline int32_t khil_top16(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x >> 16);
}

static inline uint32_t khil_pack16(int32_t bottom, int32_t top)
{
    return ((uint32_t)bottom & 0xffffu) | ((uint32_t)top << 16);
}

static inline uint32_t khil_sxtb16(uint32_t x)
{
    return khil_pack16((int8_t)(uint8_t)(x & 0xffu), (int8_t)(uint8_t)((x >> 16) & 0xffu));
}

static inline uint32_t khil_sxtab16(uint32_t a, uint32_t x)
{
    return khil_pack16(khil_bottom16(a) + (int8_t)(uint8_t)(x & 0xffu),
                       khil_top16(a) + (int8_t)(uint8_t)((x >> 16) & 0xffu));
}

static inline int32_t khil_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(khil_bottom16(a) * khil_bottom16(b)) +
                     (uint32_t)(khil_top16(a) * khil_top16(b)));
}

static inline uint32_t khil_sxtb16_ror8(uint32_t x)
{
    return khil_sxtb16(khil_ror8(x));
}

static inline uint32_t khil_sadd16(uint32_t a, uint32_t b)
{
    return khil_pack16(khil_bottom16(a) + khil_bottom16(b), khil_top16(a) + khil_top16(b));
}

static inline uint32_t khil_sxtab16_ror8(uint32_t a, uint32_t x)
{
    return khil_sxtab16(a, khil_ror8(x));
}

static inline int32_t khil_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(khil_bottom16(a) * khil_bottom16(b)));
}

static inline int32_t khil_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(khil_top16(a) * khil_top16(b)));
}

static inline uint32_t khil_smax8(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)(uint8_t)(a >> i), y = (int8_t)(uint8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(x >= y ? x : y) << i;
    }
    return r;
}

static inline uint32_t khil_smin8(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)(uint8_t)(a >> i), y = (int8_t)(uint8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(x <= y ? x : y) << i;
    }
    return r;
}

#endif

/* All four bytes set to v (an int8 value). */
static inline uint32_t khil_dup8(int32_t v)
{
    return ((uint32_t)v & 0xffu) * 0x01010101u;
}

/* Both halves set to v (an int16 value). */
static inline uint32_t khil_dup16(int32_t v)
{
    return ((uint32_t)v & 0xffffu) | ((uint32_t)v << 16);
}

#endif /* KHIL_SIMD_H */
