/* CONV_2D and DEPTHWISE_CONV_2D, int8 with per-channel requantisation: the arithmetic of
 * LiteRT's reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel.
 *
 * CONV_2D runs as a GEMM: for two output pixels at a time, their receptive fields become two
 * int16 columns (input offset added, padding as zeros, khil_gemm.h layout) in the op's scratch
 * buffer, and every pair of output channels takes four dual-MAC dot products over them.
 * DEPTHWISE_CONV_2D (depth multiplier 1) works on four channels per word with 16-bit MACs.
 * Other shapes (grouped convolution, depth multipliers > 1) take the plain reference loops. */
#include <stddef.h>
#include <string.h>

#include "khil_gemm.h"
#include "khil_internal.h"
#include "khil_quant.h"

static inline int32_t clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Requantises one accumulator of output channel ch to the int8 output. */
/* (Not inlined: only the reference loops and rare fallbacks use it; code size.) */
static __attribute__((noinline, optimize("Os"))) int8_t conv_output(const khil_op *op,
                                                    const khil_conv_params *p, int32_t acc,
                                 int32_t ch)
{
    const int32_t q = p->per_channel ? ch : 0;
#ifdef KHIL_VARIANTS
    if (op->variant & KHIL_VARIANT_FP32_REQUANT) {
        return (int8_t)khil_requant_fp32(acc, p->fp32_scale[q], p->output_offset, p->act_min,
                                         p->act_max);
    }
#endif
    (void)op;
    acc = khil_requant(acc, p->mult[q], p->shift[q], KHIL_OP_VARIANT(op)) + p->output_offset;
    return (int8_t)clamp(acc, p->act_min, p->act_max);
}

static int conv_as_gemm(const khil_conv_params *p)
{
    return p->f_in_c == p->in_c; /* no groups */
}

/* The K of the DSP GEMM's column layout: K itself, or K rounded up to a multiple of 4 when the
 * weight rows padded with zeros fit in PAD_WEIGHTS_MAX bytes of scratch (e.g. an RGB first
 * layer, K = 27 -> 28), so that the assembly's whole 4-value blocks cover it; the padding adds
 * zero products. Other K take the reference loops. */
#define PAD_WEIGHTS_MAX 2048
static int32_t conv_k_layout(const khil_conv_params *p)
{
    const int32_t k = p->k_h * p->k_w * p->f_in_c;
    const int32_t k4 = (k + 3) & ~3;
    return k4 != k && p->out_c * k4 <= PAD_WEIGHTS_MAX ? k4 : k;
}

static void conv_generic(const khil_op *op, const khil_conv_params *p, const int8_t *x,
                         int8_t *y);

uint32_t khil_conv_scratch_bytes(const khil_conv_params *p)
{
    if (!conv_as_gemm(p)) {
        return 0;
    }
    const int32_t k = p->k_h * p->k_w * p->f_in_c;
#if KHIL_HAVE_MVE
    /* each output channel's bias with the input offset folded in, four pixels' accumulators,
     * then four int8 columns */
    return 4u * (uint32_t)p->out_c + 16u * (((uint32_t)p->out_c + 3u) & ~3u) +
           4u * (((uint32_t)k + 3u) & ~3u);
#endif
    const int32_t kk = conv_k_layout(p);
    if ((kk & 3) != 0) {
        return 0; /* the reference loops */
    }
    /* input depths that are not a multiple of 4: the receptive field gathered as int8 first */
    const uint32_t gather = (p->in_c & 3) != 0 ? (uint32_t)kk : 0u;
    /* each output channel's bias and requantisation (conv_channel), prepared per inference */
    const uint32_t table = 16u * (uint32_t)p->out_c;
    /* the zero-padded weight rows */
    const uint32_t padded = kk != k ? (uint32_t)p->out_c * (uint32_t)kk : 0u;
    return table + khil_columns8_bytes(kk) + gather + padded;
}

static inline int32_t bias_of(const khil_conv_params *p, int32_t c)
{
    return p->bias != NULL ? khil_load_i32(p->bias + 4 * c) : 0;
}

#if !KHIL_HAVE_MVE /* the DSP-extension GEMM */
/* One output channel of the GEMM: its doubled bias and requantisation (khil_rqd), prepared
 * once per inference; an all-zero weight row (khil_conv_params.live) has DEAD_CHANNEL as shift
 * and its constant output in bias2. Four words (the assembly reads them in this order). */
typedef struct {
    int32_t bias2;
    khil_rqd rq;
} conv_channel;

#define DEAD_CHANNEL (-2)

/* The receptive field of output pixel `pixel` (batch-major) as column j of eight (khil_gemm.h
 * layout, kk values, zeros past K). Input depths that are a multiple of 4 go straight into the
 * column, a tap at a time; others (e.g. an RGB first layer) are gathered as int8 into `gather`
 * first (padding as the zero point, i.e. 0 once the offset is added; a window wholly inside the
 * input a filter row at a time), so the column is written a word at a time. */
static void conv_column(const khil_conv_params *p, const int8_t *x, int32_t pixel, int16_t *col,
                        int32_t j, int8_t *gather, int32_t kk)
{
    const int32_t ox = pixel % p->out_w;
    const int32_t rest = pixel / p->out_w;
    const int32_t oy = rest % p->out_h;
    const int32_t b = rest / p->out_h;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t k_all = p->k_h * p->k_w * p->f_in_c;
    const int32_t ic = p->in_c;
    const uint32_t off2 = khil_dup16(p->input_offset);
    if ((ic & 3) != 0) {
        const int8_t pad = (int8_t)(-p->input_offset);
        int32_t k = 0;
        if (p->dilation_w == 1 && iy0 >= 0 && iy0 + p->dilation_h * (p->k_h - 1) < p->in_h &&
            ix0 >= 0 && ix0 + p->k_w <= p->in_w) {
            const int32_t row = p->k_w * ic;
            const int8_t *src = x + ((b * p->in_h + iy0) * p->in_w + ix0) * ic;
            for (int32_t fy = 0; fy < p->k_h; fy++, src += p->dilation_h * p->in_w * ic) {
                for (int32_t i = 0; i < row; i++) {
                    gather[k++] = src[i];
                }
            }
        } else {
            for (int32_t fy = 0; fy < p->k_h; fy++) {
                const int32_t iy = iy0 + p->dilation_h * fy;
                const int row_inside = iy >= 0 && iy < p->in_h;
                for (int32_t fx = 0; fx < p->k_w; fx++) {
                    const int32_t ix = ix0 + p->dilation_w * fx;
                    if (row_inside && ix >= 0 && ix < p->in_w) {
                        const int8_t *src = x + ((b * p->in_h + iy) * p->in_w + ix) * ic;
                        for (int32_t i = 0; i < ic; i++) {
                            gather[k++] = src[i];
                        }
                    } else {
                        for (int32_t i = 0; i < ic; i++) {
                            gather[k++] = pad;
                        }
                    }
                }
            }
        }
        while (k < kk) {
            gather[k++] = pad;
        }
        khil_columns8_put(col, j, 0, gather, kk, off2);
        return;
    }
    int32_t k = 0;
    for (int32_t fy = 0; fy < p->k_h; fy++) {
        const int32_t iy = iy0 + p->dilation_h * fy;
        const int row_inside = iy >= 0 && iy < p->in_h;
        for (int32_t fx = 0; fx < p->k_w; fx++, k += ic) {
            const int32_t ix = ix0 + p->dilation_w * fx;
            if (row_inside && ix >= 0 && ix < p->in_w) {
                const int8_t *src = x + ((b * p->in_h + iy) * p->in_w + ix) * ic;
                khil_columns8_put(col, j, k, src, ic, off2);
            } else {
                khil_columns8_zero(col, j, k, ic);
            }
        }
    }
    khil_columns8_zero(col, j, k_all, kk - k_all);
}

/* All live channels of a run for eight pixels whose columns are built: per channel its dot
 * products with the eight columns (the doubled sums), their requantisations, the clamp and
 * eight byte stores. Fields at fixed offsets: the assembly copies them to its stack frame. */
typedef struct {
    const uint32_t *col_end;  /* 0 */
    const uint32_t *col;      /* 4 */
    const conv_channel *chan; /* 8: next channel */
    int8_t *y;                /* 12: next channel's output in pixel 0 */
    int32_t oc;               /* 16: bytes between the pixels' outputs */
    uint32_t lo4, hi4;        /* 20, 24: the activation bounds in every byte */
    int32_t count;            /* 28: channels (>= 1) */
    int32_t odd;              /* 32: K / 4 is odd (one 4-value block before the loop) */
    const int8_t *w;          /* 36: the first channel's weight row (rows consecutive) */
} conv_run;

#if KHIL_HAVE_DSP
_Static_assert(sizeof(void *) == 4 && offsetof(conv_run, oc) == 16 &&
                   offsetof(conv_run, count) == 28 && offsetof(conv_run, w) == 36 &&
                   sizeof(conv_channel) == 16,
               "conv_run and conv_channel offsets are used by the assembly");

/* r0-r7 the eight sums, r8 r9 a weight word widened (w0, w2) (w1, w3), r10 r11 a column's two
 * words, r12 the columns, lr the weights; the rest in the stack frame (a copy of the run).
 * 27 instructions per 32 MACs: one weight word widened once serves eight pixels. */
__attribute__((naked, noinline)) static void conv_run_asm(conv_run *r __attribute__((unused)))
{
#define KHIL_C8_COL(S)                                                                             \
    "ldrd    r10, r11, [r12], #8\n\t"                                                             \
    "smlad   " S ", r8, r10, " S "\n\t"                                                           \
    "smlad   " S ", r9, r11, " S "\n\t"
#define KHIL_C8_BLOCK                                                                              \
    "ldr     r9, [lr], #4\n\t"                                                                    \
    "sxtb16  r8, r9\n\t"                                                                          \
    "sxtb16  r9, r9, ror #8\n\t" KHIL_C8_COL("r0") KHIL_C8_COL("r1") KHIL_C8_COL("r2")            \
        KHIL_C8_COL("r3") KHIL_C8_COL("r4") KHIL_C8_COL("r5") KHIL_C8_COL("r6")                   \
            KHIL_C8_COL("r7")
#define KHIL_C8_RQ(S)                                                                              \
    "smmulr  " S ", " S ", r9\n\t"                                                                \
    "sub     " S ", " S ", " S ", lsr #31\n\t"                                                    \
    "add     " S ", " S ", r10\n\t"                                                               \
    "asr     " S ", " S ", r11\n\t"                                                               \
    "ssat    " S ", #8, " S "\n\t"
#define KHIL_C8_CLAMP(S)                                                                           \
    "ssub8   r10, " S ", r8\n\t"                                                                  \
    "sel     " S ", " S ", r8\n\t"                                                                \
    "ssub8   r10, r9, " S "\n\t"                                                                  \
    "sel     " S ", " S ", r9\n\t"
#define KHIL_C8_STORE4(S)                                                                          \
    "strb    " S ", [r10]\n\t"                                                                    \
    "lsr     " S ", " S ", #8\n\t"                                                                \
    "strb    " S ", [r10, r11]\n\t"                                                               \
    "add     r10, r10, r11, lsl #1\n\t"                                                           \
    "lsr     " S ", " S ", #8\n\t"                                                                \
    "strb    " S ", [r10]\n\t"                                                                    \
    "lsr     " S ", " S ", #8\n\t"                                                                \
    "strb    " S ", [r10, r11]\n\t"                                                               \
    "add     r10, r10, r11, lsl #1\n\t"
    __asm__ volatile("push    {r4-r11, lr}\n\t"
                     "sub     sp, sp, #44\n\t"
                     "ldmia   r0, {r1-r10}\n\t"
                     "stmia   sp, {r1-r10}\n\t"
                     "mov     lr, r10\n"
                     "5:\n\t"
                     "ldr     r8, [sp, #8]\n\t"
                     "ldr     r0, [r8]\n\t"
                     "mov     r1, r0\n\t"
                     "mov     r2, r0\n\t"
                     "mov     r3, r0\n\t"
                     "mov     r4, r0\n\t"
                     "mov     r5, r0\n\t"
                     "mov     r6, r0\n\t"
                     "mov     r7, r0\n\t"
                     "ldr     r12, [sp, #4]\n\t"
                     "ldr     r10, [sp, #32]\n\t"
                     "cmp     r10, #0\n\t"
                     "bne     3f\n"
                     "1:\n\t" KHIL_C8_BLOCK "3:\n\t" KHIL_C8_BLOCK
                     "ldr     r10, [sp]\n\t"
                     "cmp     r12, r10\n\t"
                     "bne     1b\n\t"
                     "ldr     r8, [sp, #8]\n\t"
                     "ldr     r9, [r8, #4]\n\t"
                     "ldrd    r10, r11, [r8, #8]\n\t"
                     "add     r8, r8, #16\n\t"
                     "str     r8, [sp, #8]\n\t" KHIL_C8_RQ("r0") KHIL_C8_RQ("r1")
                         KHIL_C8_RQ("r2") KHIL_C8_RQ("r3") KHIL_C8_RQ("r4") KHIL_C8_RQ("r5")
                             KHIL_C8_RQ("r6") KHIL_C8_RQ("r7")
                     "bfi     r0, r1, #8, #8\n\t"
                     "bfi     r0, r2, #16, #8\n\t"
                     "bfi     r0, r3, #24, #8\n\t"
                     "bfi     r4, r5, #8, #8\n\t"
                     "bfi     r4, r6, #16, #8\n\t"
                     "bfi     r4, r7, #24, #8\n\t"
                     "ldrd    r8, r9, [sp, #20]\n\t" KHIL_C8_CLAMP("r0") KHIL_C8_CLAMP("r4")
                     "ldrd    r10, r11, [sp, #12]\n\t" KHIL_C8_STORE4("r0") KHIL_C8_STORE4("r4")
                     "ldr     r10, [sp, #12]\n\t"
                     "add     r10, r10, #1\n\t"
                     "str     r10, [sp, #12]\n\t"
                     "ldr     r10, [sp, #28]\n\t"
                     "subs    r10, r10, #1\n\t"
                     "str     r10, [sp, #28]\n\t"
                     "bne     5b\n\t"
                     "add     sp, sp, #44\n\t"
                     "pop     {r4-r11, pc}");
#undef KHIL_C8_STORE4
#undef KHIL_C8_CLAMP
#undef KHIL_C8_RQ
#undef KHIL_C8_BLOCK
#undef KHIL_C8_COL
}
#endif

static void conv_run_channels(conv_run *r)
{
#if KHIL_HAVE_DSP
    conv_run_asm(r);
#else
    /* the same steps in C */
    const int32_t blocks = (int32_t)(r->col_end - r->col) / 16;
    const int8_t *w = r->w;
    for (int32_t c = 0; c < r->count; c++, r->chan++, r->y++) {
        int32_t s[8];
        for (int32_t j = 0; j < 8; j++) {
            s[j] = r->chan->bias2;
        }
        for (int32_t b = 0; b < blocks; b++, w += 4) {
            const uint32_t a = khil_ld32(w);
            const uint32_t a02 = khil_sxtb16(a), a13 = khil_sxtb16_ror8(a);
            const uint32_t *x = r->col + 16 * b;
            for (int32_t j = 0; j < 8; j++) {
                s[j] = khil_smlad(a13, x[2 * j + 1], khil_smlad(a02, x[2 * j], s[j]));
            }
        }
        for (int32_t j = 0; j < 8; j++) {
            const int32_t v = clamp(khil_sat8(khil_rqd_apply(&r->chan->rq, s[j])),
                                    (int8_t)(uint8_t)r->lo4, (int8_t)(uint8_t)r->hi4);
            r->y[j * r->oc] = (int8_t)v;
        }
    }
#endif
}

/* Whether the eight-pixel GEMM runs this layer (else the reference loops): no groups, K a
 * multiple of 4 (or padded to one), at least eight pixels, every live channel on khil_rqd with
 * its sums below 2^30 (|bias| + K * 128 * 255), no arithmetic variant. Fills the table. */
static int conv_gemm_fits(const khil_op *op, const khil_conv_params *p, int32_t kk,
                          conv_channel *table)
{
    const int32_t k = p->k_h * p->k_w * p->f_in_c;
    if (!conv_as_gemm(p) || (kk & 3) != 0 || p->batches * p->out_h * p->out_w < 8 ||
        KHIL_OP_VARIANT(op) != 0) {
        return 0;
    }
    const int64_t sums_max = (1LL << 30) - (int64_t)k * 128 * 255;
    for (int32_t c = 0; c < p->out_c; c++) {
        const int32_t bias = bias_of(p, c);
        conv_channel *t = &table[c];
        if (!khil_channel_live(p, c)) {
            /* all-zero weights: the sum is the bias at every pixel */
            t->bias2 = conv_output(op, p, bias, c);
            t->rq.shift = DEAD_CHANNEL;
            continue;
        }
        const int32_t q = p->per_channel ? c : 0;
        if ((int64_t)bias >= sums_max || (int64_t)bias <= -sums_max ||
            !khil_rqd_make(p->mult[q], p->shift[q], p->output_offset, &t->rq)) {
            return 0;
        }
        t->bias2 = (int32_t)(2u * (uint32_t)bias);
    }
    return 1;
}

/* Eight output pixels at a time (the last eight overlap the previous block when the count is
 * not a multiple of 8: their outputs are computed twice, identically): their columns, then
 * each live channel's weight row once, in runs of consecutive live channels. */
static void conv_gemm(const khil_op *op, const khil_conv_params *p, const int8_t *x, int8_t *y)
{
    const int32_t k_model = p->k_h * p->k_w * p->f_in_c;
    const int32_t k = conv_k_layout(p); /* the columns' and weight rows' length */
    const int32_t oc = p->out_c;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    conv_channel *table = (conv_channel *)(void *)op->scratch;
    if (op->scratch == NULL || !conv_gemm_fits(op, p, k, table)) {
        conv_generic(op, p, x, y);
        return;
    }
    int16_t *col = (int16_t *)(void *)(table + oc);
    int8_t *gather = (int8_t *)col + khil_columns8_bytes(k);
    const int8_t *weights = p->weights;
    if (k != k_model) { /* the rows padded with zeros, after the gather buffer */
        int8_t *padded = gather + ((p->in_c & 3) != 0 ? k : 0);
        for (int32_t c = 0; c < oc; c++) {
            memcpy(padded + c * k, weights + c * k_model, (size_t)k_model);
            memset(padded + c * k + k_model, 0, (size_t)(k - k_model));
        }
        weights = padded;
    }
    conv_run run;
    run.col = (const uint32_t *)(const void *)col;
    run.col_end = run.col + 4 * k;
    run.oc = oc;
    run.lo4 = khil_dup8(p->act_min);
    run.hi4 = khil_dup8(p->act_max);
    run.odd = (k >> 2) & 1;
    for (int32_t pix = 0; pix < pixels; pix += 8) {
        if (pix + 8 > pixels) {
            pix = pixels - 8;
        }
        for (int32_t j = 0; j < 8; j++) {
            conv_column(p, x, pix + j, col, j, gather, k);
        }
        int8_t *yp = y + pix * oc;
        for (int32_t c = 0; c < oc;) {
            if (table[c].rq.shift == DEAD_CHANNEL) {
                for (int32_t j = 0; j < 8; j++) {
                    yp[j * oc + c] = (int8_t)table[c].bias2;
                }
                c++;
                continue;
            }
            int32_t end = c + 1;
            while (end < oc && table[end].rq.shift != DEAD_CHANNEL) {
                end++;
            }
            run.chan = table + c;
            run.y = yp + c;
            run.count = end - c;
            run.w = weights + c * k;
            conv_run_channels(&run);
            c = end;
        }
    }
}

#else /* KHIL_HAVE_MVE */

/* Helium CONV_2D: int8 receptive fields (no widening: VMLADAVA multiplies 16 int8 pairs into
 * an int32 sum), the input offset moved into each channel's bias as offset * sum(weights) (the
 * same integer sum: w . (x + off) = w . x + off * sum(w); padding is gathered as the zero
 * point, i.e. 0 once offset), four output pixels per pass over a weight row, and the
 * requantisation of those four in one vector. Scratch: the channels' folded biases, then four
 * int8 columns of K values. A 1x1 convolution with stride 1 reads its columns straight from
 * the input. */

/* dst[0..n) = src[0..n) (n >= 0): a tail-predicated loop of 16-byte steps (WLSTP skips n = 0;
 * the last step moves only the remaining bytes). */
static inline void mve_copy8(int8_t *dst, const int8_t *src, int32_t n)
{
    __asm__ volatile("wlstp.8     lr, %[n], 2f\n"
                     "1:\n\t"
                     "vldrb.8     q0, [%[s]], #16\n\t"
                     "vstrb.8     q0, [%[d]], #16\n\t"
                     "letp        lr, 1b\n"
                     "2:"
                     : [d] "+r"(dst), [s] "+r"(src), "=m"(*(int8_t(*)[])dst)
                     : [n] "r"(n), "m"(*(const int8_t(*)[])src)
                     : "q0", "lr");
}

static inline void mve_fill8(int8_t *dst, int8_t v, int32_t n)
{
    const int8x16_t d = vdupq_n_s8(v);
    __asm__ volatile("wlstp.8     lr, %[n], 2f\n"
                     "1:\n\t"
                     "vstrb.8     %q[v], [%[d]], #16\n\t"
                     "letp        lr, 1b\n"
                     "2:"
                     : [d] "+r"(dst), "=m"(*(int8_t(*)[])dst)
                     : [n] "r"(n), [v] "w"(d)
                     : "lr");
}

/* The receptive field of output pixel `pixel` (batch-major) as K int8 values: a window wholly
 * inside the input (dilation 1 along a row) is copied a filter row (k_w * in_c contiguous
 * bytes) at a time, others a tap at a time with the zero point for the taps outside. */
static void conv_column_i8(const khil_conv_params *p, const int8_t *x, int32_t pixel,
                           int8_t *col)
{
    const int32_t ox = pixel % p->out_w;
    const int32_t rest = pixel / p->out_w;
    const int32_t oy = rest % p->out_h;
    const int32_t b = rest / p->out_h;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t ic = p->in_c;
    if (p->dilation_w == 1 && iy0 >= 0 && iy0 + p->dilation_h * (p->k_h - 1) < p->in_h &&
        ix0 >= 0 && ix0 + p->k_w <= p->in_w) {
        const int32_t row = p->k_w * ic;
        const int8_t *src = x + ((b * p->in_h + iy0) * p->in_w + ix0) * ic;
        const int32_t src_step = p->dilation_h * p->in_w * ic;
        for (int32_t fy = 0; fy < p->k_h; fy++, col += row, src += src_step) {
            mve_copy8(col, src, row);
        }
        return;
    }
    const int8_t pad = (int8_t)(-p->input_offset);
    for (int32_t fy = 0; fy < p->k_h; fy++) {
        const int32_t iy = iy0 + p->dilation_h * fy;
        const int row_inside = iy >= 0 && iy < p->in_h;
        for (int32_t fx = 0; fx < p->k_w; fx++, col += ic) {
            const int32_t ix = ix0 + p->dilation_w * fx;
            if (row_inside && ix >= 0 && ix < p->in_w) {
                mve_copy8(col, x + ((b * p->in_h + iy) * p->in_w + ix) * ic, ic);
            } else {
                mve_fill8(col, pad, ic);
            }
        }
    }
}

/* All output channels of four pixels whose columns are ready: for each channel (weight rows k
 * bytes apart, consecutive) its four sums bias + w . c_j, stored as sums[4 c + j]. One assembly
 * loop: the dot product is a tail-predicated low-overhead loop (DLSTP / LETP: the last step
 * loads and sums only the remaining values, nothing past a column or the weight row is read),
 * 9 instructions per 16 values of the four columns; the state between channels lives in this
 * block (fixed offsets) so that the registers hold the sums and pointers. VMLADAVA needs even
 * accumulator registers, hence the fixed ones. */
typedef struct {
    const int8_t *c[4];  /* 0: the columns */
    const int32_t *bias; /* 16: next channel's bias */
    int32_t *sums;       /* 20: next channel's four sums */
    int32_t k;           /* 24 */
    int32_t count;       /* 28: channels left (>= 1) */
} conv_mve_pass;

_Static_assert(sizeof(void *) == 4 && offsetof(conv_mve_pass, bias) == 16 &&
                   offsetof(conv_mve_pass, count) == 28,
               "conv_mve_pass offsets are used by the assembly");

static void conv_mve_pass_run(conv_mve_pass *c, const int8_t *w)
{
    register int32_t s0 __asm__("r0");
    register int32_t s1 __asm__("r2");
    register int32_t s2 __asm__("r4");
    register int32_t s3 __asm__("r6");
    const int8_t *c0, *c1, *c2, *c3;
    int32_t t;
    __asm__ volatile("1:\n\t"
                     "ldr         %[t], [%[c], #16]\n\t"
                     "ldr         %[s0], [%[t]], #4\n\t"
                     "str         %[t], [%[c], #16]\n\t"
                     "mov         %[s1], %[s0]\n\t"
                     "mov         %[s2], %[s0]\n\t"
                     "mov         %[s3], %[s0]\n\t"
                     "ldrd        %[c0], %[c1], [%[c]]\n\t"
                     "ldrd        %[c2], %[c3], [%[c], #8]\n\t"
                     "ldr         %[t], [%[c], #24]\n\t"
                     "dlstp.8     lr, %[t]\n\t"
                     "add         %[t], %[w], %[t]\n" /* the next row (the last step of
                                                         * the loop advances w by 16) */
                     "2:\n\t"
                     "vldrb.8     q0, [%[w]], #16\n\t"
                     "vldrb.8     q1, [%[c0]], #16\n\t"
                     "vmladava.s8 %[s0], q0, q1\n\t"
                     "vldrb.8     q1, [%[c1]], #16\n\t"
                     "vmladava.s8 %[s1], q0, q1\n\t"
                     "vldrb.8     q1, [%[c2]], #16\n\t"
                     "vmladava.s8 %[s2], q0, q1\n\t"
                     "vldrb.8     q1, [%[c3]], #16\n\t"
                     "vmladava.s8 %[s3], q0, q1\n\t"
                     "letp        lr, 2b\n\t"
                     "mov         %[w], %[t]\n\t"
                     "ldr         %[t], [%[c], #20]\n\t"
                     "strd        %[s0], %[s1], [%[t]], #8\n\t"
                     "strd        %[s2], %[s3], [%[t]], #8\n\t"
                     "str         %[t], [%[c], #20]\n\t"
                     "ldr         %[t], [%[c], #28]\n\t"
                     "subs        %[t], %[t], #1\n\t"
                     "str         %[t], [%[c], #28]\n\t"
                     "bne         1b"
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3),
                       [w] "+r"(w), [c0] "=&r"(c0), [c1] "=&r"(c1), [c2] "=&r"(c2),
                       [c3] "=&r"(c3), [t] "=&r"(t)
                     : [c] "r"(c)
                     : "q0", "q1", "lr", "cc", "memory");
}

/* LiteRT's MultiplyByQuantizedMultiplier (double rounding) of four channels' accumulators, with
 * per-lane multipliers and shifts: VQRDMULH is gemmlowp's SaturatingRoundingDoublingHighMul;
 * RoundingDivideByPOT (ties away from zero) is VRSHL (ties up) of the value minus 1 where it is
 * negative and the shift is a right shift (saturating: INT32_MIN stays). */
static inline int32x4_t mve_requant(int32x4_t v, int32x4_t mult, int32x4_t shift)
{
    const int32x4_t right = vminq_s32(shift, vdupq_n_s32(0));
    v = vshlq_s32(v, vmaxq_s32(shift, vdupq_n_s32(0)));
    v = vqrdmulhq_s32(v, mult);
    v = vqaddq_s32(v, vshrq_n_s32(vandq_s32(v, right), 31));
    return vrshlq_s32(v, right);
}

static void conv_gemm(const khil_op *op, const khil_conv_params *p, const int8_t *x, int8_t *y)
{
    const int32_t k = p->k_h * p->k_w * p->f_in_c;
    const int32_t oc = p->out_c;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    int32_t *bias = (int32_t *)(void *)op->scratch;
    int32_t *sums = bias + oc; /* [oc rounded up to 4][4]: the four pixels' accumulators */
    int8_t *col = (int8_t *)(sums + 4 * ((oc + 3) & ~3));
    const int32_t kc = (k + 3) & ~3; /* column stride */
    const int direct = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                       p->pad_h == 0 && p->pad_w == 0 && p->out_h == p->in_h &&
                       p->out_w == p->in_w;
    for (int32_t c = 0; c < oc; c++) {
        const int8_t *w = p->weights + c * k;
        int32_t sum = 0;
        for (int32_t i = 0; i < k; i += 16) {
            sum = vaddvaq_s8(sum, vldrbq_z_s8(w + i, vctp8q((uint32_t)(k - i))));
        }
        bias[c] = (int32_t)((uint32_t)bias_of(p, c) + (uint32_t)p->input_offset * (uint32_t)sum);
        if (!khil_channel_live(p, c)) { /* all-zero weights: the sums stay the bias */
            for (int32_t j = 0; j < 4; j++) {
                sums[4 * c + j] = bias[c];
            }
        }
    }
    const int32x4_t out_offset = vdupq_n_s32(p->output_offset);
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    for (int32_t pix = 0; pix < pixels; pix += 4) {
        const int32_t n = pixels - pix < 4 ? pixels - pix : 4;
        const int8_t *cj[4];
        for (int32_t j = 0; j < 4; j++) {
            const int32_t jj = j < n ? j : 0; /* missing pixels repeat the first */
            if (direct) {
                cj[j] = x + (pix + jj) * k;
            } else {
                cj[j] = col + jj * kc;
                if (j < n) {
                    conv_column_i8(p, x, pix + j, col + j * kc);
                }
            }
        }
        /* each run of live channels (khil_conv_params.live) */
        for (int32_t c = 0; c < oc;) {
            if (p->live == NULL) {
                conv_mve_pass pass = {{cj[0], cj[1], cj[2], cj[3]}, bias, sums, k, oc};
                conv_mve_pass_run(&pass, p->weights);
                break;
            }
            if (!khil_channel_live(p, c)) {
                c++;
                continue;
            }
            int32_t end = c + 1;
            while (end < oc && khil_channel_live(p, end)) {
                end++;
            }
            conv_mve_pass pass = {{cj[0], cj[1], cj[2], cj[3]}, bias + c, sums + 4 * c, k,
                                  end - c};
            conv_mve_pass_run(&pass, p->weights + c * k);
            c = end;
        }
        /* requantisation, four channels at a time */
        int8_t *yp = y + pix * oc;
        for (int32_t c = 0; c < oc; c += 4) {
            const mve_pred16_t m = vctp32q((uint32_t)(oc - c));
            int32x4_t mult, shift;
            if (p->per_channel) {
                mult = vldrwq_z_s32(p->mult + c, m);
                shift = vldrbq_z_s32(p->shift + c, m);
            } else {
                mult = vdupq_n_s32(p->mult[0]);
                shift = vdupq_n_s32(p->shift[0]);
            }
            /* sums[4 c .. 4 c + 15] de-interleaved: pixel j's four channels in val[j] */
            const int32x4x4_t v4 = vld4q_s32(sums + 4 * c);
            for (int32_t j = 0; j < n; j++) {
                int32x4_t v = mve_requant(v4.val[j], mult, shift);
                v = vminq_s32(vmaxq_s32(vaddq_s32(v, out_offset), lo), hi);
                vstrbq_p_s32(yp + j * oc + c, v, m);
            }
        }
    }
    (void)op;
}

#endif /* KHIL_HAVE_MVE */

/* Grouped convolution: the reference loops (rare: compiled for size). */
static __attribute__((noinline, optimize("Os"))) void
conv_generic(const khil_op *op, const khil_conv_params *p, const int8_t *x, int8_t *y)
{
    const int8_t *w = p->weights;
    const int32_t ih = p->in_h, iw = p->in_w, ic = p->in_c;
    const int32_t kh = p->k_h, kw = p->k_w, fic = p->f_in_c;
    const int32_t oh = p->out_h, ow = p->out_w, oc = p->out_c;
    const int32_t per_group = oc / (ic / fic);

    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (int32_t c = 0; c < oc; c++) {
                    const int32_t g = c / per_group;
                    int32_t acc = 0;
                    for (int32_t fy = 0; fy < kh; fy++) {
                        const int32_t iy = iy0 + p->dilation_h * fy;
                        if (iy < 0 || iy >= ih) {
                            continue;
                        }
                        for (int32_t fx = 0; fx < kw; fx++) {
                            const int32_t ix = ix0 + p->dilation_w * fx;
                            if (ix < 0 || ix >= iw) {
                                continue;
                            }
                            const int8_t *xp = x + ((b * ih + iy) * iw + ix) * ic + g * fic;
                            const int8_t *wp = w + ((c * kh + fy) * kw + fx) * fic;
                            for (int32_t k = 0; k < fic; k++) {
                                acc += wp[k] * (xp[k] + p->input_offset);
                            }
                        }
                    }
                    if (p->bias != NULL) {
                        acc += khil_load_i32(p->bias + 4 * c);
                    }
                    y[((b * oh + oy) * ow + ox) * oc + c] = conv_output(op, p, acc, c);
                }
            }
        }
    }
}

void khil_kernel_conv(const khil_op *op, khil_tensor *t)
{
    const khil_conv_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    int8_t *y = (int8_t *)t[op->out].data;
    if (conv_as_gemm(p)) {
        conv_gemm(op, p, x, y);
    } else {
        conv_generic(op, p, x, y);
    }
}

/* The taps f of one axis inside the input for an output position: 0 <= i0 + d * f < size. */
static inline void taps_inside(int32_t i0, int32_t d, int32_t size, int32_t k, int32_t *f0,
                               int32_t *f1)
{
    *f0 = i0 < 0 ? (-i0 + d - 1) / d : 0;
    const int32_t end = size - i0 <= 0 ? 0 : (size - i0 + d - 1) / d;
    *f1 = end < k ? end : k;
}


#if !KHIL_HAVE_MVE
/* DEPTHWISE_CONV_2D with the DSP extension: 3x3 kernels, dilation 1, depth multiplier 1,
 * horizontal stride 1 or 2 (any vertical stride and padding). Per group of four channels and
 * band of output rows, each channel's input becomes an int16 plane (input offset added, zeros
 * where the window leaves the input: the reference skips those taps, a zero adds nothing), so
 * that one word holds two horizontally adjacent values of one channel and SMLAD takes two taps
 * at once: two output pixels cost 9 loads and 12 MACs (dw_accumulate), no border cases. The
 * weights and bias are doubled (int16) so the sum is 2 * acc, and the requantisation is then
 * SMMULR (gemmlowp's SaturatingRoundingDoublingHighMul of acc) and a rounding shift with the
 * output offset folded in (dw_requantize, 6 instructions per output). Other shapes, and
 * channels whose shift or bias fall outside that form, take the reference loops. */
#define DW_PLANE_BUDGET 8192 /* bytes of a band's four planes (a wider input takes more) */
#define DW_SUMS_MAX 64       /* sums per accumulation pass (KWS: arena within +10 %) */

typedef struct {
    int32_t row_h; /* int16 values per plane row */
    int32_t band;  /* output rows per band (the planes' rows: (band - 1) * stride_h + 3) */
    int32_t chunk; /* output rows per accumulation pass */
} dw_geometry;

/* Channel c's requantisation of its doubled sums (khil_rqd); 0 where the form does not hold
 * or the sum may reach 2^30 (|bias| + 9 taps of at most 128 * 255). */
static int dw_channel_rq(const khil_conv_params *p, int32_t c, khil_rqd *rq)
{
    const int32_t q = p->per_channel ? c : 0;
    const int32_t bias = bias_of(p, c);
    const int32_t bias_max = (1 << 30) - 9 * 128 * 255;
    return bias < bias_max && bias > -bias_max &&
           khil_rqd_make(p->mult[q], p->shift[q], p->output_offset, rq);
}

/* Whether the plane kernel runs this layer, and its geometry. */
static int dw_planes_fit(const khil_conv_params *p, dw_geometry *g)
{
    if (p->depth_multiplier != 1 || p->k_h != 3 || p->k_w != 3 || p->dilation_h != 1 ||
        p->dilation_w != 1 || (p->stride_w != 1 && p->stride_w != 2) || p->out_w > 32768) {
        return 0;
    }
    for (int32_t c = 0; c < p->in_c; c++) {
        khil_rqd rq;
        if (!dw_channel_rq(p, c, &rq)) {
            return 0;
        }
    }
    const int32_t owe = (p->out_w + 1) & ~1;
    g->row_h = ((owe - 1) * p->stride_w + (p->stride_w == 1 ? 4 : 6) + 1) & ~1;
    const int32_t rows = DW_PLANE_BUDGET / (8 * g->row_h);
    g->band = rows > 3 ? (rows - 3) / p->stride_h + 1 : 1;
    g->band = g->band < p->out_h ? g->band : p->out_h;
    g->chunk = DW_SUMS_MAX / owe > 1 ? DW_SUMS_MAX / owe : 1;
    g->chunk = g->chunk < g->band ? g->chunk : g->band;
    return 1;
}

static uint32_t dw_planes_scratch(const dw_geometry *g, const khil_conv_params *p)
{
    const uint32_t plane = (uint32_t)(((g->band - 1) * p->stride_h + 3) * g->row_h);
    const uint32_t sums = (uint32_t)(g->chunk * ((p->out_w + 1) & ~1) + 4);
    return 4u * 2u * plane + 4u * sums;
}

/* Rows iy0 .. iy0 + rows - 1 of channels c0 .. c0 + n - 1 into planes (plane_h values apart):
 * plane column j is input column j - pad_w. The columns outside the input are never written
 * (the planes are zeroed once per layer); rows outside it are zeroed here. */
static void dw_fill(const khil_conv_params *p, const int8_t *x, int32_t c0, int32_t n,
                    int32_t iy0, int32_t rows, int32_t row_h, int32_t plane_h, int16_t *planes)
{
    const int32_t iw = p->in_w, ch = p->in_c;
    const int32_t j0 = p->pad_w < row_h ? p->pad_w : row_h;
    const int32_t j1 = p->pad_w + iw < row_h ? p->pad_w + iw : row_h;
    const uint32_t off2 = khil_dup16(p->input_offset);
    for (int32_t i = 0; i < rows; i++) {
        const int32_t iy = iy0 + i;
        int16_t *d = planes + i * row_h;
        if (iy < 0 || iy >= p->in_h) {
            for (int32_t k = 0; k < n; k++) {
                memset(d + k * plane_h, 0, 2u * (uint32_t)row_h);
            }
            continue;
        }
        const int8_t *s = x + (iy * iw + j0 - p->pad_w) * ch + c0;
        if (n == 4) {
            int16_t *d0 = d + j0, *d1 = d0 + plane_h, *d2 = d1 + plane_h, *d3 = d2 + plane_h;
            for (int32_t j = 0; j < j1 - j0; j++, s += ch) {
                const uint32_t v = khil_ld32(s);
                const uint32_t e = khil_sxtab16(off2, v), o = khil_sxtab16_ror8(off2, v);
                d0[j] = (int16_t)e;
                d2[j] = (int16_t)(e >> 16);
                d1[j] = (int16_t)o;
                d3[j] = (int16_t)(o >> 16);
            }
        } else {
            for (int32_t k = 0; k < n; k++) {
                for (int32_t j = 0; j < j1 - j0; j++) {
                    d[k * plane_h + j0 + j] = (int16_t)(s[j * ch + k] + p->input_offset);
                }
            }
        }
    }
}

/* One channel's sums over `rows` output rows, two pixels per step. Fields at fixed offsets
 * (the assembly reads them). */
typedef struct {
    const int16_t *row; /* 0: plane row under the current output row's top taps, column 0 */
    int32_t row_bytes;  /* 4 */
    uint32_t w[5];      /* 8: doubled weights (w00,w01) (w10,w11) (w20,w21) (w02,w12) (w22,
                         * pairs - 1): bottom halfword first */
    int32_t bias2;      /* 28: doubled bias */
    int32_t *sums;      /* 32 */
    uint32_t pairs_hi;  /* 36: pairs << 16 */
    int32_t rows;       /* 40: rows left (>= 1) */
    int32_t row_step;   /* 44: bytes between output rows' top plane rows */
    int32_t sums_back;  /* 48: bytes the odd pixel of a row's last pair takes back */
} dw_job;

#if KHIL_HAVE_DSP
_Static_assert(sizeof(void *) == 4 && offsetof(dw_job, bias2) == 28 &&
                   offsetof(dw_job, sums_back) == 48,
               "dw_job offsets are used by the assembly");

/* r0 plane pointer, r1 next tap row, r2 row bytes, r3-r7 weights (the pair count in r7's top
 * half, counted down: SMLAxB read only its bottom half), r8 r9 the two sums, r10 r11 input
 * words, r12 sums pointer, lr the doubled bias; the job's address on the stack. */
#define DW_PROLOGUE                                                                                \
    "push    {r4-r11, lr}\n\t"                                                                    \
    "push    {r0}\n\t"                                                                            \
    "ldr     r2, [r0, #4]\n\t"                                                                    \
    "add     r1, r0, #8\n\t"                                                                      \
    "ldmia   r1, {r3-r7}\n\t"                                                                     \
    "ldr     lr, [r0, #28]\n\t"                                                                   \
    "ldr     r12, [r0, #32]\n\t"                                                                  \
    "ldr     r0, [r0]\n"                                                                          \
    "2:\n"
#define DW_EPILOGUE                                                                                \
    "ldr     r1, [sp]\n\t"                                                                        \
    "ldr     r8, [r1, #48]\n\t"                                                                   \
    "sub     r12, r12, r8\n\t"                                                                    \
    "ldr     r8, [r1]\n\t"                                                                        \
    "ldr     r9, [r1, #44]\n\t"                                                                   \
    "add     r0, r8, r9\n\t"                                                                      \
    "str     r0, [r1]\n\t"                                                                        \
    "ldr     r9, [r1, #36]\n\t"                                                                   \
    "add     r7, r7, r9\n\t"                                                                      \
    "ldr     r9, [r1, #40]\n\t"                                                                   \
    "subs    r9, r9, #1\n\t"                                                                      \
    "str     r9, [r1, #40]\n\t"                                                                   \
    "bne     2b\n\t"                                                                              \
    "pop     {r0}\n\t"                                                                            \
    "pop     {r4-r11, pc}"

/* Stride 1: pixel 0's taps x0 x1 x2, pixel 1's x1 x2 x3 of each row. */
__attribute__((naked, noinline)) static void dw_accumulate_s1(dw_job *job __attribute__((unused)))
{
    __asm__ volatile(DW_PROLOGUE
                     "1:\n\t"
                     "ldr     r10, [r0]\n\t"
                     "ldr     r11, [r0, #2]\n\t"
                     "smlad   r8, r10, r3, lr\n\t"
                     "smlad   r9, r11, r3, lr\n\t"
                     "ldr     r10, [r0, #4]\n\t"
                     "smlabb  r8, r10, r6, r8\n\t"
                     "smlatb  r9, r10, r6, r9\n\t"
                     "add     r1, r0, r2\n\t"
                     "ldr     r10, [r1]\n\t"
                     "ldr     r11, [r1, #2]\n\t"
                     "smlad   r8, r10, r4, r8\n\t"
                     "smlad   r9, r11, r4, r9\n\t"
                     "ldr     r10, [r1, #4]\n\t"
                     "smlabt  r8, r10, r6, r8\n\t"
                     "smlatt  r9, r10, r6, r9\n\t"
                     "add     r1, r1, r2\n\t"
                     "ldr     r10, [r1]\n\t"
                     "ldr     r11, [r1, #2]\n\t"
                     "smlad   r8, r10, r5, r8\n\t"
                     "smlad   r9, r11, r5, r9\n\t"
                     "ldr     r10, [r1, #4]\n\t"
                     "smlabb  r8, r10, r7, r8\n\t"
                     "smlatb  r9, r10, r7, r9\n\t"
                     "stmia   r12!, {r8, r9}\n\t"
                     "add     r0, r0, #4\n\t"
                     "subs    r7, r7, #65536\n\t"
                     "bpl     1b\n\t" DW_EPILOGUE);
}

/* Stride 2: pixel 0's taps x0 x1 x2, pixel 1's x2 x3 x4 of each row. */
__attribute__((naked, noinline)) static void dw_accumulate_s2(dw_job *job __attribute__((unused)))
{
    __asm__ volatile(DW_PROLOGUE
                     "1:\n\t"
                     "ldr     r10, [r0]\n\t"
                     "ldr     r11, [r0, #4]\n\t"
                     "smlad   r8, r10, r3, lr\n\t"
                     "smlad   r9, r11, r3, lr\n\t"
                     "smlabb  r8, r11, r6, r8\n\t"
                     "ldr     r10, [r0, #8]\n\t"
                     "smlabb  r9, r10, r6, r9\n\t"
                     "add     r1, r0, r2\n\t"
                     "ldr     r10, [r1]\n\t"
                     "ldr     r11, [r1, #4]\n\t"
                     "smlad   r8, r10, r4, r8\n\t"
                     "smlad   r9, r11, r4, r9\n\t"
                     "smlabt  r8, r11, r6, r8\n\t"
                     "ldr     r10, [r1, #8]\n\t"
                     "smlabt  r9, r10, r6, r9\n\t"
                     "add     r1, r1, r2\n\t"
                     "ldr     r10, [r1]\n\t"
                     "ldr     r11, [r1, #4]\n\t"
                     "smlad   r8, r10, r5, r8\n\t"
                     "smlad   r9, r11, r5, r9\n\t"
                     "smlabb  r8, r11, r7, r8\n\t"
                     "ldr     r10, [r1, #8]\n\t"
                     "smlabb  r9, r10, r7, r9\n\t"
                     "stmia   r12!, {r8, r9}\n\t"
                     "add     r0, r0, #8\n\t"
                     "subs    r7, r7, #65536\n\t"
                     "bpl     1b\n\t" DW_EPILOGUE);
}
#undef DW_PROLOGUE
#undef DW_EPILOGUE
#endif

static void dw_accumulate(dw_job *j, int32_t stride_w)
{
#if KHIL_HAVE_DSP
    if (stride_w == 1) {
        dw_accumulate_s1(j);
    } else {
        dw_accumulate_s2(j);
    }
#else
    /* the same sums, tap by tap (integer sums: the order does not matter) */
    const int32_t pairs = (int32_t)(j->pairs_hi >> 16), L = j->row_bytes / 2;
    int32_t w[3][3];
    for (int32_t fy = 0; fy < 3; fy++) {
        w[fy][0] = (int16_t)(uint16_t)j->w[fy];
        w[fy][1] = (int16_t)(uint16_t)(j->w[fy] >> 16);
    }
    w[0][2] = (int16_t)(uint16_t)j->w[3];
    w[1][2] = (int16_t)(uint16_t)(j->w[3] >> 16);
    w[2][2] = (int16_t)(uint16_t)j->w[4];
    for (; j->rows > 0; j->rows--) {
        int32_t *s = j->sums;
        for (int32_t px = 0; px < 2 * pairs; px++) {
            int32_t acc = j->bias2;
            for (int32_t fy = 0; fy < 3; fy++) {
                for (int32_t fx = 0; fx < 3; fx++) {
                    acc += w[fy][fx] * j->row[fy * L + px * stride_w + fx];
                }
            }
            *s++ = acc;
        }
        j->sums = (int32_t *)(void *)((uint8_t *)s - j->sums_back);
        j->row = (const int16_t *)(const void *)((const uint8_t *)j->row + j->row_step);
    }
#endif
}

/* Requantisation of 4 * quads doubled sums of one channel, outputs `ch` bytes apart. Fields
 * at fixed offsets (the assembly reads them). */
typedef struct {
    const int32_t *sums; /* 0 */
    int8_t *y;           /* 4 */
    int32_t ch;          /* 8 */
    int32_t mult;        /* 12 */
    int32_t round;       /* 16 */
    uint32_t shift;      /* 20: r | (quads - 1) << 8 */
    uint32_t lo4, hi4;   /* 24, 28: the activation bounds in every byte */
} dw_rq_job;

static inline int8_t dw_requantize_one(const dw_rq_job *q, int32_t s2)
{
    const khil_rqd rq = {q->mult, q->round, (int32_t)(q->shift & 255u)};
    const int32_t v = khil_sat8(khil_rqd_apply(&rq, s2));
    return (int8_t)clamp(v, (int8_t)(uint8_t)q->lo4, (int8_t)(uint8_t)q->hi4);
}

#if KHIL_HAVE_DSP
_Static_assert(offsetof(dw_rq_job, shift) == 20 && offsetof(dw_rq_job, lo4) == 24,
               "dw_rq_job offsets are used by the assembly");

__attribute__((naked, noinline)) static void dw_requantize_asm(const dw_rq_job *q __attribute__((unused)))
{
/* the next sum into R, requantised and saturated to int8 */
#define DW_RQ(R)                                                                                   \
    "ldr     r8, [r0], #4\n\t"                                                                    \
    "smmulr  r8, r8, r3\n\t"                                                                      \
    "sub     r8, r8, r8, lsr #31\n\t"                                                             \
    "add     r8, r8, r4\n\t"                                                                      \
    "asr     r8, r8, r5\n\t"                                                                      \
    "ssat    " R ", #8, r8\n\t"
    __asm__ volatile("push    {r4-r10, lr}\n\t"
                     "ldr     r1, [r0, #4]\n\t"
                     "ldr     r2, [r0, #8]\n\t"
                     "ldr     r3, [r0, #12]\n\t"
                     "ldr     r4, [r0, #16]\n\t"
                     "ldr     r5, [r0, #20]\n\t"
                     "ldrd    r6, r7, [r0, #24]\n\t"
                     "ldr     r0, [r0]\n"
                     "1:\n\t" DW_RQ("r9") DW_RQ("r8") "bfi     r9, r8, #8, #8\n\t" DW_RQ("r8")
                     "bfi     r9, r8, #16, #8\n\t" DW_RQ("r8")
                     "bfi     r9, r8, #24, #8\n\t"
                     "ssub8   r10, r9, r6\n\t"
                     "sel     r9, r9, r6\n\t"
                     "ssub8   r10, r7, r9\n\t"
                     "sel     r9, r9, r7\n\t"
                     "strb    r9, [r1]\n\t"
                     "lsr     r9, r9, #8\n\t"
                     "strb    r9, [r1, r2]\n\t"
                     "add     r1, r1, r2, lsl #1\n\t"
                     "lsr     r9, r9, #8\n\t"
                     "strb    r9, [r1]\n\t"
                     "lsr     r9, r9, #8\n\t"
                     "strb    r9, [r1, r2]\n\t"
                     "add     r1, r1, r2, lsl #1\n\t"
                     "subs    r5, r5, #256\n\t"
                     "bpl     1b\n\t"
                     "pop     {r4-r10, pc}");
#undef DW_RQ
}
#endif

static void dw_requantize(dw_rq_job *q, int32_t quads)
{
#if KHIL_HAVE_DSP
    q->shift = (q->shift & 255u) | (uint32_t)(quads - 1) << 8;
    dw_requantize_asm(q);
#else
    for (int32_t i = 0; i < 4 * quads; i++) {
        q->y[i * q->ch] = dw_requantize_one(q, q->sums[i]);
    }
#endif
}

/* One channel's requantisation state across bands: sums not yet requantised (fewer than
 * four) and where its next output goes. */
typedef struct {
    int32_t carry[3];
    int32_t carried;
    int8_t *y;
} dw_channel;

static void depthwise_planes(const khil_op *op, const khil_conv_params *p, const dw_geometry *g,
                             const int8_t *x, int8_t *y)
{
    const int32_t ch = p->in_c, ow = p->out_w, oh = p->out_h, sh = p->stride_h;
    const int32_t L = g->row_h, pairs = (ow + 1) / 2;
    const int32_t plane_h = ((g->band - 1) * sh + 3) * L;
    int16_t *planes = (int16_t *)(void *)op->scratch;
    int32_t *sums = (int32_t *)(void *)(planes + 4 * plane_h);
    memset(planes, 0, 8u * (uint32_t)plane_h);
    dw_rq_job q;
    q.ch = ch;
    q.lo4 = khil_dup8(p->act_min);
    q.hi4 = khil_dup8(p->act_max);
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *xb = x + b * p->in_h * p->in_w * ch;
        int8_t *yb = y + b * oh * ow * ch;
        for (int32_t c0 = 0; c0 < ch; c0 += 4) {
            const int32_t n = ch - c0 < 4 ? ch - c0 : 4;
            dw_channel st[4];
            for (int32_t k = 0; k < n; k++) {
                memset(&st[k], 0, sizeof st[k]);
                st[k].y = yb + c0 + k;
            }
            for (int32_t oy0 = 0; oy0 < oh; oy0 += g->band) {
                const int32_t rows = oh - oy0 < g->band ? oh - oy0 : g->band;
                dw_fill(p, xb, c0, n, oy0 * sh - p->pad_h, (rows - 1) * sh + 3, L, plane_h,
                        planes);
                for (int32_t k = 0; k < n; k++) {
                    const int32_t c = c0 + k;
                    const int8_t *w = p->weights + c;
                    dw_job j;
#define DW_W(t) ((uint32_t)(uint16_t)(int16_t)(2 * w[(t) * ch]))
                    j.w[0] = DW_W(0) | DW_W(1) << 16;
                    j.w[1] = DW_W(3) | DW_W(4) << 16;
                    j.w[2] = DW_W(6) | DW_W(7) << 16;
                    j.w[3] = DW_W(2) | DW_W(5) << 16;
                    j.w[4] = DW_W(8) | (uint32_t)(pairs - 1) << 16;
#undef DW_W
                    j.row_bytes = 2 * L;
                    j.bias2 = (int32_t)(2u * (uint32_t)bias_of(p, c));
                    j.pairs_hi = (uint32_t)pairs << 16;
                    j.row_step = 2 * sh * L;
                    j.sums_back = 4 * (2 * pairs - ow);
                    khil_rqd rq;
                    dw_channel_rq(p, c, &rq);
                    q.mult = rq.mult;
                    q.round = rq.round;
                    q.shift = (uint32_t)rq.shift;
                    dw_channel *s = &st[k];
                    for (int32_t r0 = 0; r0 < rows; r0 += g->chunk) {
                        const int32_t cr = rows - r0 < g->chunk ? rows - r0 : g->chunk;
                        sums[0] = s->carry[0];
                        sums[1] = s->carry[1];
                        sums[2] = s->carry[2];
                        j.row = planes + k * plane_h + r0 * sh * L;
                        j.sums = sums + s->carried;
                        j.rows = cr;
                        dw_accumulate(&j, p->stride_w);
                        const int32_t total = s->carried + cr * ow, quads = total / 4;
                        if (quads > 0) {
                            q.sums = sums;
                            q.y = s->y;
                            dw_requantize(&q, quads);
                            s->y += 4 * quads * ch;
                        }
                        s->carried = total - 4 * quads;
                        for (int32_t i = 0; i < s->carried; i++) {
                            s->carry[i] = sums[4 * quads + i];
                        }
                    }
                }
            }
            for (int32_t k = 0; k < n; k++) { /* the last outputs, fewer than four */
                const int32_t c = c0 + k;
                khil_rqd rq;
                dw_channel_rq(p, c, &rq);
                q.mult = rq.mult;
                q.round = rq.round;
                q.shift = (uint32_t)rq.shift;
                for (int32_t i = 0; i < st[k].carried; i++) {
                    st[k].y[i * ch] = dw_requantize_one(&q, st[k].carry[i]);
                }
            }
        }
    }
}
#endif /* !KHIL_HAVE_MVE */

#if KHIL_HAVE_MVE
/* Helium DEPTHWISE_CONV_2D (depth multiplier 1): eight channels per vector as int16 (input
 * offset added: |x + offset| <= 255), VMULLB / VMULLT giving the even and the odd channels'
 * int32 products, so each tap is 7 instructions for 8 MACs; any kernel size, stride, dilation
 * and padding (only the taps inside the input are visited, as in the reference). The channel
 * group's bias and requantisation, split into even and odd channels, are prepared once per
 * inference in the op's scratch; the two int32 halves are narrowed back into channel order
 * (VMOVNB / VMOVNT) and stored as 8 bytes. A partial last group is predicated. */
typedef struct {
    int32_t bias[2][4]; /* 0: [even, odd][lane]: channel 8g + 2 lane + (0 | 1) */
    int32_t mult[2][4]; /* 32 */
    int32_t left[2][4]; /* 64: the shift where positive, else 0 */
    int32_t right[2][4]; /* 96: the shift where negative, else 0 */
} dw_group;

_Static_assert(sizeof(dw_group) == 128, "dw_group offsets are used by the assembly");

static void dw_groups_make(const khil_conv_params *p, dw_group *g)
{
    memset(g, 0, sizeof(dw_group) * (size_t)((p->in_c + 7) / 8));
    for (int32_t c = 0; c < p->in_c; c++) {
        dw_group *d = &g[c / 8];
        const int32_t half = c & 1, lane = (c & 7) / 2;
        const int32_t q = p->per_channel ? c : 0;
        d->bias[half][lane] = bias_of(p, c);
        d->mult[half][lane] = p->mult[q];
        d->left[half][lane] = p->shift[q] > 0 ? p->shift[q] : 0;
        d->right[half][lane] = p->shift[q] < 0 ? p->shift[q] : 0;
    }
}

/* Geometry of one output pixel's valid taps, as offsets from channel 0. */
typedef struct {
    const int8_t *x, *w; /* first valid tap */
    int32_t nfy, nfx;
    int whole3x3; /* a 3x3 kernel (dilation 1) with every tap inside */
    int32_t lo[4], hi[4]; /* the activation range in every lane */
    int32_t x_row, x_col, w_row, w_col;
} dw_taps;

static inline __attribute__((always_inline)) void
dw_group_pixel(const dw_group *g, const dw_taps *t, int32_t c, int16_t off, mve_pred16_t m,
               int full, const khil_conv_params *p, int8_t *y)
{
    int32x4_t e = vld1q_s32(g->bias[0]), o = vld1q_s32(g->bias[1]);
    const int8_t *xr = t->x + c, *wr = t->w + c;
    if (full && t->whole3x3) {
        /* a whole 3x3 window (dilation 1: taps t->w_col = channels apart in input and
         * weights) in assembly, 7 instructions per tap (the compiler's version of the same
         * loop reloads its strides and offset from the stack) */
        const int8_t *xp, *wp;
        int16x8_t xv, wv;
        int32x4_t tmp;
        int32_t offset = off;
#define KHIL_DWM_TAP                                                                               \
    "vldrb.s16   %q[xv], [%[xp]]\n\t"                                                          \
    "vadd.i16    %q[xv], %q[xv], %[off]\n\t"                                                   \
    "vldrb.s16   %q[wv], [%[wp]]\n\t"                                                          \
    "vmullb.s16  %q[t], %q[xv], %q[wv]\n\t"                                                    \
    "vadd.i32    %q[e], %q[e], %q[t]\n\t"                                                      \
    "vmullt.s16  %q[t], %q[xv], %q[wv]\n\t"                                                    \
    "vadd.i32    %q[o], %q[o], %q[t]\n\t"
#define KHIL_DWM_ROW                                                                               \
    "mov         %[xp], %[xr]\n\t"                                                             \
    "mov         %[wp], %[wr]\n\t" KHIL_DWM_TAP                                                 \
    "add         %[xp], %[xp], %[ch]\n\t"                                                      \
    "add         %[wp], %[wp], %[ch]\n\t" KHIL_DWM_TAP                                          \
    "add         %[xp], %[xp], %[ch]\n\t"                                                      \
    "add         %[wp], %[wp], %[ch]\n\t" KHIL_DWM_TAP
        __asm__(KHIL_DWM_ROW "add         %[xr], %[xr], %[xrow]\n\t"
                             "add         %[wr], %[wr], %[wrow]\n\t" KHIL_DWM_ROW
                             "add         %[xr], %[xr], %[xrow]\n\t"
                             "add         %[wr], %[wr], %[wrow]\n\t" KHIL_DWM_ROW
                : [e] "+w"(e), [o] "+w"(o), [xv] "=&w"(xv), [wv] "=&w"(wv), [t] "=&w"(tmp),
                  [xp] "=&l"(xp), [wp] "=&l"(wp), [xr] "+r"(xr), [wr] "+r"(wr)
                : [ch] "r"(t->w_col), [xrow] "r"(t->x_row), [wrow] "r"(t->w_row),
                  [off] "r"(offset)
                : "memory");
#undef KHIL_DWM_ROW
#undef KHIL_DWM_TAP
    } else if (full && t->nfy > 0 && t->nfx > 0) {
        /* any other window: the same taps in an assembly row/column loop (strides read from
         * t), 10 instructions per tap */
        const int8_t *xp, *wp;
        int16x8_t xv, wv;
        int32x4_t tmp;
        int32_t offset = off, rows = t->nfy, xcol, t2;
        __asm__("1:\n\t"
                "mov         %[xp], %[xr]\n\t"
                "mov         %[wp], %[wr]\n\t"
                "ldr         %[xcol], [%[t], %[o_xcol]]\n\t"
                "ldr         %[t2], [%[t], %[o_nfx]]\n\t"
                "dls         lr, %[t2]\n\t"
                "ldr         %[t2], [%[t], %[o_wcol]]\n"
                "2:\n\t"
                "vldrb.s16   %q[xv], [%[xp]]\n\t"
                "vadd.i16    %q[xv], %q[xv], %[off]\n\t"
                "vldrb.s16   %q[wv], [%[wp]]\n\t"
                "vmullb.s16  %q[tmp], %q[xv], %q[wv]\n\t"
                "vadd.i32    %q[e], %q[e], %q[tmp]\n\t"
                "vmullt.s16  %q[tmp], %q[xv], %q[wv]\n\t"
                "vadd.i32    %q[o], %q[o], %q[tmp]\n\t"
                "add         %[xp], %[xp], %[xcol]\n\t"
                "add         %[wp], %[wp], %[t2]\n\t"
                "le          lr, 2b\n\t"
                "ldr         %[t2], [%[t], %[o_xrow]]\n\t"
                "add         %[xr], %[xr], %[t2]\n\t"
                "ldr         %[t2], [%[t], %[o_wrow]]\n\t"
                "add         %[wr], %[wr], %[t2]\n\t"
                "subs        %[rows], %[rows], #1\n\t"
                "bne         1b"
                : [e] "+w"(e), [o] "+w"(o), [xv] "=&w"(xv), [wv] "=&w"(wv), [tmp] "=&w"(tmp),
                  [xp] "=&l"(xp), [wp] "=&l"(wp), [xr] "+r"(xr), [wr] "+r"(wr),
                  [rows] "+r"(rows), [xcol] "=&r"(xcol), [t2] "=&r"(t2)
                : [t] "r"(t), [off] "r"(offset), [o_xcol] "i"(offsetof(dw_taps, x_col)),
                  [o_wcol] "i"(offsetof(dw_taps, w_col)), [o_xrow] "i"(offsetof(dw_taps, x_row)),
                  [o_wrow] "i"(offsetof(dw_taps, w_row)), [o_nfx] "i"(offsetof(dw_taps, nfx))
                : "lr", "cc", "memory");
    } else {
    for (int32_t fy = 0; fy < t->nfy; fy++, xr += t->x_row, wr += t->w_row) {
        const int8_t *xp = xr, *wp = wr;
        for (int32_t fx = 0; fx < t->nfx; fx++, xp += t->x_col, wp += t->w_col) {
            const int16x8_t xv = vaddq_n_s16(full ? vldrbq_s16(xp) : vldrbq_z_s16(xp, m), off);
            const int16x8_t wv = full ? vldrbq_s16(wp) : vldrbq_z_s16(wp, m);
            e = vaddq_s32(e, vmullbq_int_s16(xv, wv));
            o = vaddq_s32(o, vmulltq_int_s16(xv, wv));
        }
    }
    }
    if (full) {
        /* requantisation (mve_requant's steps) with the parameters read from the group's
         * table and the bounds from t, back to channel order, 8 bytes stored: in assembly, as
         * the compiler keeps too few of these vectors in registers */
        int32x4_t u, v;
        int16x8_t r;
        int8_t *yc = y + c;
#define KHIL_DWM_RQ(A, OFF)                                                                        \
    "vldrw.32     %q[v], [%[g], #64+" OFF "]\n\t"                                               \
    "vshl.s32     %q[" A "], %q[" A "], %q[v]\n\t"                                              \
    "vldrw.32     %q[v], [%[g], #32+" OFF "]\n\t"                                               \
    "vqrdmulh.s32 %q[" A "], %q[" A "], %q[v]\n\t"                                              \
    "vldrw.32     %q[v], [%[g], #96+" OFF "]\n\t"                                               \
    "vand         %q[u], %q[" A "], %q[v]\n\t"                                                  \
    "vshr.s32     %q[u], %q[u], #31\n\t"                                                        \
    "vqadd.s32    %q[" A "], %q[" A "], %q[u]\n\t"                                              \
    "vrshl.s32    %q[" A "], %q[" A "], %q[v]\n\t"                                              \
    "vadd.i32     %q[" A "], %q[" A "], %[out]\n\t"                                             \
    "vldrw.32     %q[v], [%[lh]]\n\t"                                                          \
    "vmax.s32     %q[" A "], %q[" A "], %q[v]\n\t"                                              \
    "vldrw.32     %q[v], [%[lh], #16]\n\t"                                                     \
    "vmin.s32     %q[" A "], %q[" A "], %q[v]\n\t"
        __asm__ volatile(KHIL_DWM_RQ("e", "0") KHIL_DWM_RQ("o", "16")
                "vmovnb.i32   %q[r], %q[e]\n\t"
                "vmovnt.i32   %q[r], %q[o]\n\t"
                "vstrb.16     %q[r], [%[y]]"
                : [e] "+w"(e), [o] "+w"(o), [u] "=&w"(u), [v] "=&w"(v), [r] "=&w"(r)
                : [g] "r"(g), [lh] "r"(t->lo), [out] "r"(p->output_offset), [y] "l"(yc)
                : "memory");
#undef KHIL_DWM_RQ
        return;
    }
    const int32x4_t out = vdupq_n_s32(p->output_offset);
    const int32x4_t lo = vld1q_s32(t->lo), hi = vld1q_s32(t->hi);
    e = vshlq_s32(e, vld1q_s32(g->left[0]));
    o = vshlq_s32(o, vld1q_s32(g->left[1]));
    e = vqrdmulhq_s32(e, vld1q_s32(g->mult[0]));
    o = vqrdmulhq_s32(o, vld1q_s32(g->mult[1]));
    const int32x4_t re = vld1q_s32(g->right[0]), ro = vld1q_s32(g->right[1]);
    e = vrshlq_s32(vqaddq_s32(e, vshrq_n_s32(vandq_s32(e, re), 31)), re);
    o = vrshlq_s32(vqaddq_s32(o, vshrq_n_s32(vandq_s32(o, ro), 31)), ro);
    e = vminq_s32(vmaxq_s32(vaddq_s32(e, out), lo), hi);
    o = vminq_s32(vmaxq_s32(vaddq_s32(o, out), lo), hi);
    const int16x8_t r = vmovntq_s32(vmovnbq_s32(vdupq_n_s16(0), e), o);
    vstrbq_p_s16(y + c, r, m);
}

static void depthwise_mve(const khil_op *op, const khil_conv_params *p, const int8_t *x,
                          int8_t *y)
{
    const int32_t ih = p->in_h, iw = p->in_w, ch = p->in_c;
    const int32_t kh = p->k_h, kw = p->k_w, dh = p->dilation_h, dw = p->dilation_w;
    dw_group *groups = (dw_group *)(void *)op->scratch;
    dw_groups_make(p, groups);
    dw_taps t;
    for (int32_t j = 0; j < 4; j++) {
        t.lo[j] = p->act_min;
        t.hi[j] = p->act_max;
    }
    const int32_t full_ch = ch & ~7;
    const mve_pred16_t m = vctp16q((uint32_t)(ch - full_ch));
    const int16_t off = (int16_t)p->input_offset;
    t.x_row = dh * iw * ch;
    t.x_col = dw * ch;
    t.w_row = kw * ch;
    t.w_col = ch;
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            taps_inside(iy0, dh, ih, kh, &fy0, &fy1);
            t.nfy = fy1 - fy0;
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                taps_inside(ix0, dw, iw, kw, &fx0, &fx1);
                t.nfx = fx1 - fx0;
                t.whole3x3 = kh == 3 && kw == 3 && dh == 1 && dw == 1 && t.nfy == 3 &&
                             t.nfx == 3;
                /* first valid tap, as an element index (never an out-of-range pointer) */
                t.x = x + ((b * ih + iy0 + dh * fy0) * iw + ix0 + dw * fx0) * ch;
                t.w = p->weights + (fy0 * kw + fx0) * ch;
                int8_t *yp = y + ((b * p->out_h + oy) * p->out_w + ox) * ch;
                int32_t c = 0;
                for (const dw_group *g = groups; c < full_ch; c += 8, g++) {
                    dw_group_pixel(g, &t, c, off, m, 1, p, yp);
                }
                if (c < ch) {
                    dw_group_pixel(&groups[c / 8], &t, c, off, m, 0, p, yp);
                }
            }
        }
    }
}
#endif /* KHIL_HAVE_MVE */

uint32_t khil_depthwise_scratch_bytes(const khil_conv_params *p)
{
#if KHIL_HAVE_MVE
    /* each group of 8 channels' bias and requantisation (dw_group: 128 bytes) */
    if (p->depth_multiplier == 1) {
        return 128u * (uint32_t)((p->in_c + 7) / 8);
    }
    return 0;
#else
    /* a band's four channel planes and the sums of one pass */
    dw_geometry g;
    return dw_planes_fit(p, &g) ? dw_planes_scratch(&g, p) : 0u;
#endif
}

/* Depth multipliers above 1, and depthwise shapes without a fast path: the reference loops (rare: compiled for size). */
static __attribute__((noinline, optimize("Os"))) void
depthwise_generic(const khil_op *op, const khil_conv_params *p, const int8_t *x, int8_t *y)
{
    const int8_t *w = p->weights;
    const int32_t ih = p->in_h, iw = p->in_w, ic = p->in_c;
    const int32_t kh = p->k_h, kw = p->k_w;
    const int32_t oh = p->out_h, ow = p->out_w, oc = p->out_c;
    const int32_t dm = p->depth_multiplier;

    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (int32_t c = 0; c < ic; c++) {
                    for (int32_t m = 0; m < dm; m++) {
                        const int32_t o = m + c * dm;
                        int32_t acc = 0;
                        for (int32_t fy = 0; fy < kh; fy++) {
                            const int32_t iy = iy0 + p->dilation_h * fy;
                            if (iy < 0 || iy >= ih) {
                                continue;
                            }
                            for (int32_t fx = 0; fx < kw; fx++) {
                                const int32_t ix = ix0 + p->dilation_w * fx;
                                if (ix < 0 || ix >= iw) {
                                    continue;
                                }
                                const int32_t xv = x[((b * ih + iy) * iw + ix) * ic + c];
                                const int32_t wv = w[(fy * kw + fx) * oc + o];
                                acc += wv * (xv + p->input_offset);
                            }
                        }
                        if (p->bias != NULL) {
                            acc += khil_load_i32(p->bias + 4 * o);
                        }
                        y[((b * oh + oy) * ow + ox) * oc + o] = conv_output(op, p, acc, o);
                    }
                }
            }
        }
    }
}

void khil_kernel_depthwise(const khil_op *op, khil_tensor *t)
{
    const khil_conv_params *p = op->params;
    const int8_t *x = (const int8_t *)t[op->in[0]].data;
    int8_t *y = (int8_t *)t[op->out].data;
#if KHIL_HAVE_MVE
    if (p->depth_multiplier == 1) {
        depthwise_mve(op, p, x, y);
    } else {
        depthwise_generic(op, p, x, y);
    }
#else
    if (p->depth_multiplier == 1) {
        dw_geometry g;
        if (KHIL_OP_VARIANT(op) == 0 && dw_planes_fit(p, &g)) {
            depthwise_planes(op, p, &g, x, y);
            return;
        }
    }
    depthwise_generic(op, p, x, y);
#endif
}
