/* Internal data structures of the interpreter, shared by the loader and the kernels.
 * Everything here lives in the caller's arena; nothing is heap-allocated. */
#ifndef KHIL_INTERNAL_H
#define KHIL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "khil_interp.h"

/* TFLite BuiltinOperator codes we implement. */
enum {
    KHIL_BUILTIN_ADD = 0,
    KHIL_BUILTIN_AVERAGE_POOL_2D = 1,
    KHIL_BUILTIN_CONV_2D = 3,
    KHIL_BUILTIN_DEPTHWISE_CONV_2D = 4,
    KHIL_BUILTIN_FULLY_CONNECTED = 9,
    KHIL_BUILTIN_RESHAPE = 22,
    KHIL_BUILTIN_SOFTMAX = 25
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

/* A tensor as the kernels see it (persistent, one per model tensor). */
typedef struct khil_tensor {
    uint8_t type;
    uint8_t ndim;
    uint8_t is_const; /* data points into the model's buffers */
    uint8_t reserved;
    int32_t dims[KHIL_MAX_DIMS];
    uint32_t elems;
    uint32_t bytes;
    uint8_t *data;
    float scale;
    int32_t zero_point;
} khil_tensor;

/* What only loading needs about a tensor: lives in the (not yet used) activation region while
 * the model is parsed and planned, so it costs no arena after loading. */
typedef struct khil_tensor_load {
    const uint8_t *channel_scales; /* per-channel float32 scales in the model (little endian) */
    uint32_t num_scales;
    int32_t quant_dim;
    uint8_t zero_points_all_zero;
    uint8_t planned;  /* data lives in the arena's activation region */
    /* memory planning: the value must be kept from op `first` to op `last` (inclusive) */
    int32_t first;
    int32_t last;
    int32_t alias_of; /* RESHAPE output: shares the memory of this tensor, or -1 */
    uint64_t offset;  /* byte offset of data in the activation region */
} khil_tensor_load;

typedef struct {
    int32_t stride_w, stride_h, dilation_w, dilation_h, pad_w, pad_h;
    int32_t depth_multiplier; /* depthwise only */
    int32_t input_offset, output_offset;
    int32_t per_channel;      /* mult/shift hold one entry per output channel, else one */
    int32_t *mult;
    int8_t *shift;
#ifdef KHIL_VARIANTS
    float *fp32_scale; /* KHIL_VARIANT_FP32_REQUANT only */
#endif
} khil_conv_params;

typedef struct {
    int32_t input_offset, filter_offset, output_offset;
    int32_t per_channel;
    uint64_t *scale_mant; /* the double effective scale = scale_mant * 2^scale_exp */
    int32_t *scale_exp;
#ifdef KHIL_VARIANTS
    int32_t *mult; /* fixed-point form (TFLite Micro's arithmetic), variant only */
    int8_t *shift;
    float *fp32_scale; /* KHIL_VARIANT_FP32_REQUANT only */
#endif
    int32_t batches, accum_depth, output_depth;
} khil_fc_params;

typedef struct {
    int32_t stride_w, stride_h, filter_w, filter_h, pad_w, pad_h;
} khil_pool_params;

typedef struct {
    int32_t input1_offset, input2_offset, output_offset, left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t broadcast;
} khil_add_params;

typedef struct {
    int32_t input_multiplier, input_left_shift, diff_min;
    int32_t outer, depth;
} khil_softmax_params;

typedef struct khil_op {
    uint8_t kind;     /* khil_op_kind */
    uint8_t builtin;  /* TFLite builtin code, for messages */
    int16_t index;    /* operator index in subgraph 0 */
    int16_t in[3];    /* tensor indices, -1 when absent */
    int16_t out;
    int32_t act_min, act_max;
#ifdef KHIL_VARIANTS
    uint32_t variant; /* KHIL_VARIANT_* bits (host investigation builds only) */
#endif
    union {
        khil_conv_params conv;
        khil_fc_params fc;
        khil_pool_params pool;
        khil_add_params add;
        khil_softmax_params softmax;
    } p;
} khil_op;

/* The arithmetic variant bits of an op: always 0 outside host investigation builds. */
#ifdef KHIL_VARIANTS
#define KHIL_OP_VARIANT(op) ((op)->variant)
#else
#define KHIL_OP_VARIANT(op) 0u
#endif

/* Writes a one-line message into err: supports %s, %d (int), %u (unsigned), %z (size_t). */
void khil_fmt(char *err, size_t err_len, const char *fmt, ...);

/* Kernels: each runs one operator on planned tensors. */
void khil_kernel_conv(const khil_op *op, khil_tensor *t);
void khil_kernel_depthwise(const khil_op *op, khil_tensor *t);
void khil_kernel_fully_connected(const khil_op *op, khil_tensor *t);
void khil_kernel_average_pool(const khil_op *op, khil_tensor *t);
void khil_kernel_add(const khil_op *op, khil_tensor *t);
void khil_kernel_softmax(const khil_op *op, khil_tensor *t);

/* Memory planner: places tensors with planned=1 in the activation region (writes their
 * offsets) and returns the region's size. */
uint64_t khil_plan_memory(const khil_tensor *tensors, khil_tensor_load *load, int32_t n,
                          size_t alignment);

/* Loads a little-endian int32 from possibly unaligned model memory. */
static inline int32_t khil_load_i32(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                 ((uint32_t)p[3] << 24);
    return (int32_t)v;
}

#endif /* KHIL_INTERNAL_H */
