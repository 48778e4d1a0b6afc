/* Internal data structures of the interpreter, shared by the loader and the kernels.
 * Everything here lives in the caller's arena; nothing is heap-allocated.
 *
 * After loading, the arena holds: the activation region (planned tensors and per-op scratch),
 * one compact record per tensor the kernels touch at run time (activations, model inputs and
 * outputs), one record per operator and its parameter block. Weights and biases are read in
 * place from the model through pointers in the parameter blocks. */
#ifndef KHIL_INTERNAL_H
#define KHIL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "khil_interp.h"

/* TFLite BuiltinOperator codes we implement: KHIL_BUILTIN_<NAME>, from the operator table
 * (khil_ops.def, also read by the host). */
enum {
#define KHIL_OP(name, code, r0, t0, r1, t1, r2, t2, tout) KHIL_BUILTIN_##name = code,
#include "khil_ops.def"
#undef KHIL_OP
};

/* TFLite ActivationFunctionType. */
enum { KHIL_ACT_NONE = 0, KHIL_ACT_RELU = 1, KHIL_ACT_RELU_N1_TO_1 = 2, KHIL_ACT_RELU6 = 3 };

/* TFLite Padding. */
enum { KHIL_PAD_SAME = 0, KHIL_PAD_VALID = 1 };

typedef enum {
    KHIL_OP_CONV,
    KHIL_OP_DEPTHWISE,
    KHIL_OP_FULLY_CONNECTED,
    KHIL_OP_AVERAGE_POOL,
    KHIL_OP_ADD,
    KHIL_OP_RESHAPE,
    KHIL_OP_SOFTMAX
} khil_op_kind;

/* A tensor the kernels or the API touch at run time. */
typedef struct khil_tensor {
    uint8_t *data;
    const uint8_t *shape; /* ndim little-endian int32 dimensions, in the model */
    uint32_t bytes;
    uint8_t type;
    uint8_t ndim;
    uint16_t reserved;
    float scale;
    int32_t zero_point;
} khil_tensor;

/* Convolution geometry and requantisation (CONV_2D and DEPTHWISE_CONV_2D). */
typedef struct {
    const int8_t *weights; /* [out_c][k_h][k_w][f_in_c] (conv) or [k_h][k_w][out_c] (dw) */
    const uint8_t *bias;   /* out_c little-endian int32, or NULL */
    int32_t *mult;         /* one per output channel when per_channel, else one */
    int8_t *shift;
#ifdef KHIL_VARIANTS
    float *fp32_scale; /* KHIL_VARIANT_FP32_REQUANT only */
#endif
    /* CONV_2D: bit c (word c / 32) set when output channel c has a non-zero weight, found at
     * MODEL load; NULL when every channel has. A channel whose weights are all zero outputs the
     * requantised bias at every pixel, so the kernel skips its dot products (pruned channels:
     * 3.1 M of the 7.5 M MACs of MLPerf Tiny's VWW). */
    const uint32_t *live;
    int32_t per_channel;
    int32_t batches, in_h, in_w, in_c, k_h, k_w, f_in_c, out_h, out_w, out_c;
    int32_t stride_w, stride_h, dilation_w, dilation_h, pad_w, pad_h;
    int32_t depth_multiplier; /* depthwise only */
    int32_t input_offset, output_offset, act_min, act_max;
} khil_conv_params;

typedef struct {
    const int8_t *weights; /* [output_depth][accum_depth] */
    const uint8_t *bias;
    uint64_t *scale_mant; /* the double effective scale = scale_mant * 2^scale_exp */
    int32_t *scale_exp;
#ifdef KHIL_VARIANTS
    int32_t *mult; /* fixed-point form (TFLite Micro's arithmetic), variant only */
    int8_t *shift;
    float *fp32_scale; /* KHIL_VARIANT_FP32_REQUANT only */
#endif
    int32_t per_channel;
    int32_t batches, accum_depth, output_depth;
    int32_t input_offset, filter_offset, output_offset, act_min, act_max;
} khil_fc_params;

typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    int32_t stride_w, stride_h, filter_w, filter_h, pad_w, pad_h, act_min, act_max;
} khil_pool_params;

typedef struct {
    int32_t input1_offset, input2_offset, output_offset, left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
    uint32_t elems;
    /* Broadcasting (ndim > 0): output dims and each input's strides over them (0: repeated). */
    int32_t ndim;
    int32_t out_dims[KHIL_MAX_DIMS];
    int32_t stride1[KHIL_MAX_DIMS];
    int32_t stride2[KHIL_MAX_DIMS];
} khil_add_params;

typedef struct {
    int32_t input_multiplier, input_left_shift, diff_min;
    int32_t outer, depth;
} khil_softmax_params;

typedef struct khil_op {
    uint8_t kind;    /* khil_op_kind */
    uint8_t builtin; /* TFLite builtin code, for messages */
    int16_t index;   /* operator index in subgraph 0 */
    int16_t in[2];   /* run-time tensor records of the activation inputs, -1 when absent */
    int16_t out;
    int16_t reserved;
    void *params;     /* khil_*_params of the kind */
    uint8_t *scratch; /* per-op scratch in the activation region, or NULL */
#ifdef KHIL_VARIANTS
    uint32_t variant; /* KHIL_VARIANT_* bits (host investigation builds only) */
#endif
} khil_op;

/* What only loading needs to know about a tensor (or an op's scratch buffer): lives at the
 * bottom of the not yet used activation region, so it costs no arena after loading. */
typedef struct khil_plan_entry {
    uint32_t bytes;
    uint32_t offset; /* in the activation region, once planned */
    int16_t first;   /* the value must be kept from op `first` to op `last` (inclusive) */
    int16_t last;
    int16_t alias_of; /* RESHAPE output: shares the memory of this tensor, or -1 */
    int16_t record;   /* index of its run-time record, or -1 */
    uint8_t is_const; /* data in the model */
    uint8_t planned;  /* gets memory in the activation region */
    uint8_t needs_record;
    uint8_t reserved;
} khil_plan_entry;

/* The arithmetic variant bits of an op: always 0 outside host investigation builds. */
#ifdef KHIL_VARIANTS
#define KHIL_OP_VARIANT(op) ((op)->variant)
#else
#define KHIL_OP_VARIANT(op) 0u
#endif

/* Writes a one-line message into err: supports %s, %d (int), %u (unsigned), %z (size_t). */
void khil_fmt(char *err, size_t err_len, const char *fmt, ...);

/* Kernels: each runs one operator; t holds the run-time tensor records. */
void khil_kernel_conv(const khil_op *op, khil_tensor *t);
void khil_kernel_depthwise(const khil_op *op, khil_tensor *t);
void khil_kernel_fully_connected(const khil_op *op, khil_tensor *t);
void khil_kernel_average_pool(const khil_op *op, khil_tensor *t);
void khil_kernel_add(const khil_op *op, khil_tensor *t);
void khil_kernel_softmax(const khil_op *op, khil_tensor *t);

/* Scratch bytes a kernel needs for these parameters (0 for none). */
uint32_t khil_conv_scratch_bytes(const khil_conv_params *p);
uint32_t khil_depthwise_scratch_bytes(const khil_conv_params *p);
uint32_t khil_fully_connected_scratch_bytes(const khil_fc_params *p);

/* Memory planner: gives every entry with planned=1 an offset such that entries alive at the
 * same time do not overlap; returns the size of the activation region (UINT64_MAX-safe). */
uint64_t khil_plan_memory(khil_plan_entry *entries, int32_t n, uint32_t alignment);

/* Whether output channel c of a CONV_2D has a non-zero weight (khil_conv_params.live). */
static inline int khil_channel_live(const khil_conv_params *p, int32_t c)
{
    return p->live == NULL || ((p->live[c >> 5] >> (c & 31)) & 1u) != 0;
}

/* Loads an int32 from possibly unaligned model memory (one LDR on Cortex-M4/M55; both the
 * MCUs and the hosts we build for are little endian, as the TFLite format). */
static inline int32_t khil_load_i32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#endif /* KHIL_INTERNAL_H */
