/* Model loading: walks the TFLite flatbuffer in place, checks every operator and tensor we
 * will touch, derives the fixed-point parameters the way LiteRT's Prepare() does, and plans
 * activation memory in the caller's arena.
 *
 * Arena layout after loading: [activation region, planned from the bottom | ... | persistent
 * data, allocated downwards from the top: run-time tensor and operator records, parameter
 * blocks, per-channel multipliers]. While loading, the bottom holds the planner's entries
 * instead (khil_plan_entry), so they cost nothing once the model runs. */
#include <stdarg.h>
#include <string.h>

#include "khil_flatbuffer.h"
#include "khil_internal.h"
#include "khil_names.h"
#include "khil_quant.h"

#define ACTIVATION_ALIGN 16u
#define PERSIST_ALIGN 8u

/* Model / SubGraph / Tensor / Operator / ... field slots (TFLite schema). */
enum { MODEL_OPERATOR_CODES = 1, MODEL_SUBGRAPHS = 2, MODEL_BUFFERS = 4 };
enum { OPCODE_DEPRECATED_BUILTIN = 0, OPCODE_CUSTOM_CODE = 1, OPCODE_BUILTIN = 3 };
enum { SUBGRAPH_TENSORS = 0, SUBGRAPH_INPUTS = 1, SUBGRAPH_OUTPUTS = 2, SUBGRAPH_OPERATORS = 3 };
enum {
    TENSOR_SHAPE = 0,
    TENSOR_TYPE = 1,
    TENSOR_BUFFER = 2,
    TENSOR_QUANTIZATION = 4,
    TENSOR_SPARSITY = 6,
    TENSOR_EXTERNAL_BUFFER = 10
};
enum { QUANT_SCALE = 2, QUANT_ZERO_POINT = 3, QUANT_DIMENSION = 6 };
enum { OP_OPCODE_INDEX = 0, OP_INPUTS = 1, OP_OUTPUTS = 2, OP_BUILTIN_OPTIONS = 4 };
enum { BUFFER_DATA = 0, BUFFER_OFFSET = 1, BUFFER_SIZE = 2 };
enum { BUILTIN_CUSTOM = 32 };

/* Effective filter extents beyond this are rejected: keeps all index arithmetic in int32. */
#define MAX_FILTER_EXTENT 65536

typedef struct {
    khil_interp *ip;
    khil_fb fb;
    char *err;
    size_t err_len;
    uint8_t *base;          /* arena start, aligned */
    size_t usable;          /* arena bytes from base */
    size_t persist_used;    /* bytes taken from the top */
    size_t persist_wanted;  /* bytes asked for, even past the end (for the message) */
    size_t scratch_used;    /* planner entries at the bottom while loading */
    khil_plan_entry *plan;  /* one per tensor, then one per op (its scratch buffer) */
    uint32_t variant;
    khil_fb_vector buffers;
    khil_fb_vector tensors;
} loader;

/* Everything about one model tensor, read (and checked) from the flatbuffer on demand. */
typedef struct {
    uint8_t type;
    uint8_t ndim;
    const uint8_t *shape;
    int32_t dims[KHIL_MAX_DIMS];
    uint32_t elems;
    uint32_t bytes;
    const uint8_t *data; /* constant data in the model, or NULL */
    float scale;         /* 0 when not quantised */
    int32_t zero_point;
    const uint8_t *channel_scales; /* float32 scales in the model, num_scales of them */
    uint32_t num_scales;
    int32_t quant_dim;
    int zero_points_all_zero;
} tensor_view;

static void *persist_alloc(loader *ld, size_t n)
{
    n = (n + PERSIST_ALIGN - 1) & ~(size_t)(PERSIST_ALIGN - 1);
    ld->persist_wanted += n;
    if (ld->persist_wanted + ld->scratch_used > ld->usable) {
        return NULL;
    }
    ld->persist_used = ld->persist_wanted;
    uint8_t *p = ld->base + ld->usable - ld->persist_used;
    memset(p, 0, n);
    return p;
}

static khil_status fail_arena_metadata(loader *ld)
{
    khil_fmt(ld->err, ld->err_len,
             "model needs more than %z arena bytes (for its records alone), arena has %z",
             (size_t)(ld->base - ld->ip->arena) + ld->scratch_used + ld->persist_wanted,
             ld->ip->arena_len);
    return KHIL_ERR_ARENA;
}

static khil_status fail_corrupt(loader *ld, const char *what)
{
    khil_fmt(ld->err, ld->err_len, "corrupt TFLite model: bad flatbuffer offsets in %s", what);
    return KHIL_ERR_PARSE;
}

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        khil_status s_ = (expr);                                                                   \
        if (s_ != KHIL_OK) {                                                                       \
            return s_;                                                                             \
        }                                                                                          \
    } while (0)

static uint32_t type_size(uint8_t type)
{
    switch (type) {
    case KHIL_TYPE_INT8:
    case KHIL_TYPE_UINT8:
    case 6: /* BOOL */
        return 1;
    case KHIL_TYPE_INT16:
    case KHIL_TYPE_FLOAT16:
    case 16: /* UINT16 */
        return 2;
    case KHIL_TYPE_INT32:
    case KHIL_TYPE_FLOAT32:
    case 15: /* UINT32 */
        return 4;
    case KHIL_TYPE_INT64:
    case 10: /* FLOAT64 */
    case 12: /* UINT64 */
        return 8;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------- tensors */

static khil_status view_tensor(loader *ld, int32_t index, tensor_view *v)
{
    khil_fb *fb = &ld->fb;
    memset(v, 0, sizeof *v);
    khil_fb_table tt = khil_fb_vec_table(fb, ld->tensors, (uint32_t)index);
    khil_fb_vector shape = khil_fb_vec(fb, &tt, TENSOR_SHAPE, 4);
    v->type = khil_fb_u8(fb, &tt, TENSOR_TYPE, 0);
    uint32_t buffer = khil_fb_u32(fb, &tt, TENSOR_BUFFER, 0);
    khil_fb_table q = khil_fb_subtable(fb, &tt, TENSOR_QUANTIZATION);
    int has_sparsity = khil_fb_has(fb, &tt, TENSOR_SPARSITY);
    uint32_t external = khil_fb_u32(fb, &tt, TENSOR_EXTERNAL_BUFFER, 0);
    if (fb->bad) {
        return fail_corrupt(ld, "a tensor");
    }
    if (shape.count > KHIL_MAX_DIMS) {
        khil_fmt(ld->err, ld->err_len, "tensor %d has %u dimensions, at most %d supported",
                 (int)index, (unsigned)shape.count, KHIL_MAX_DIMS);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    v->ndim = (uint8_t)shape.count;
    v->shape = fb->buf + shape.pos;
    uint64_t elems = 1;
    for (uint32_t d = 0; d < shape.count; d++) {
        int32_t n = khil_fb_vec_i32(fb, shape, d);
        if (n < 0) {
            khil_fmt(ld->err, ld->err_len, "tensor %d has a dynamic dimension (%d)", (int)index,
                     (int)n);
            return KHIL_ERR_UNSUPPORTED_TYPE;
        }
        v->dims[d] = n;
        elems *= (uint64_t)n;
        if (elems > 0x7fffffffu) {
            khil_fmt(ld->err, ld->err_len, "tensor %d is too large", (int)index);
            return KHIL_ERR_PARSE;
        }
    }
    const uint32_t esize = type_size(v->type);
    if (elems * esize > 0x7fffffffu) {
        khil_fmt(ld->err, ld->err_len, "tensor %d is too large", (int)index);
        return KHIL_ERR_PARSE;
    }
    v->elems = (uint32_t)elems;
    v->bytes = (uint32_t)(elems * esize);
    if (has_sparsity || external) {
        khil_fmt(ld->err, ld->err_len, "tensor %d uses %s, not supported", (int)index,
                 has_sparsity ? "sparse storage" : "an external buffer");
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }

    /* Constant data stays in the model: either inline in Buffer.data or at Buffer.offset. */
    if (buffer != 0) {
        if (buffer >= ld->buffers.count) {
            khil_fmt(ld->err, ld->err_len, "tensor %d refers to buffer %u of %u", (int)index,
                     (unsigned)buffer, (unsigned)ld->buffers.count);
            return KHIL_ERR_PARSE;
        }
        khil_fb_table bt = khil_fb_vec_table(fb, ld->buffers, buffer);
        khil_fb_vector data = khil_fb_vec(fb, &bt, BUFFER_DATA, 1);
        uint64_t off = khil_fb_u64(fb, &bt, BUFFER_OFFSET, 0);
        uint64_t size = khil_fb_u64(fb, &bt, BUFFER_SIZE, 0);
        if (fb->bad) {
            return fail_corrupt(ld, "a buffer");
        }
        const uint8_t *p = NULL;
        uint64_t n = 0;
        if (data.count > 0) {
            p = fb->buf + data.pos;
            n = data.count;
        } else if (off > 1) { /* offset 1 is the converter's "not yet placed" marker */
            if (off > fb->len || size > fb->len - off) {
                khil_fmt(ld->err, ld->err_len,
                         "tensor %d data (offset %z, %z bytes) lies outside the model", (int)index,
                         (size_t)off, (size_t)size);
                return KHIL_ERR_PARSE;
            }
            p = fb->buf + off;
            n = size;
        }
        if (p != NULL) {
            if (esize == 0) {
                khil_fmt(ld->err, ld->err_len, "tensor %d has unsupported type %s", (int)index,
                         khil_type_name(v->type));
                return KHIL_ERR_UNSUPPORTED_TYPE;
            }
            if (n != v->bytes) {
                khil_fmt(ld->err, ld->err_len,
                         "tensor %d has %u bytes of data, its shape needs %u", (int)index,
                         (unsigned)n, (unsigned)v->bytes);
                return KHIL_ERR_PARSE;
            }
            v->data = p;
        }
    }

    v->zero_points_all_zero = 1;
    if (q.pos != 0) {
        khil_fb_vector sc = khil_fb_vec(fb, &q, QUANT_SCALE, 4);
        khil_fb_vector zp = khil_fb_vec(fb, &q, QUANT_ZERO_POINT, 8);
        int32_t qdim = khil_fb_i32(fb, &q, QUANT_DIMENSION, 0);
        if (fb->bad) {
            return fail_corrupt(ld, "quantization parameters");
        }
        if (sc.count > 0) {
            v->scale = khil_fb_vec_f32(fb, sc, 0);
            v->channel_scales = fb->buf + sc.pos;
            v->num_scales = sc.count;
            v->quant_dim = qdim;
        }
        if (zp.count > 0) {
            int64_t z0 = khil_fb_vec_i64(fb, zp, 0);
            if (z0 < -32768 || z0 > 65535) {
                khil_fmt(ld->err, ld->err_len, "tensor %d has zero point out of range",
                         (int)index);
                return KHIL_ERR_PARSE;
            }
            if (v->type == KHIL_TYPE_INT8 && (z0 < -128 || z0 > 127)) {
                khil_fmt(ld->err, ld->err_len, "int8 tensor %d has zero point %d", (int)index,
                         (int)z0);
                return KHIL_ERR_PARSE;
            }
            v->zero_point = (int32_t)z0;
            for (uint32_t i = 0; i < zp.count; i++) {
                if (khil_fb_vec_i64(fb, zp, i) != 0) {
                    v->zero_points_all_zero = 0;
                }
            }
        }
    }
    return KHIL_OK;
}

/* ---------------------------------------------------------------- operator checks */

typedef struct {
    loader *ld;
    khil_op *op;
    const char *name;
    int32_t in[3]; /* model tensor indices, -1 when absent */
    int32_t out;
    tensor_view v[3];
    tensor_view vo;
} op_ctx;

static khil_status want_type(op_ctx *c, const tensor_view *v, uint8_t type, const char *role)
{
    if (v->type != type) {
        khil_fmt(c->ld->err, c->ld->err_len, "unsupported tensor type %s for %s %s (op %d)",
                 khil_type_name(v->type), c->name, role, (int)c->op->index);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    return KHIL_OK;
}

static khil_status want_quantized(op_ctx *c, const tensor_view *v, const char *role)
{
    if (v->num_scales == 0 || !khil_scale_ok(v->scale)) {
        khil_fmt(c->ld->err, c->ld->err_len, "%s %s (op %d) has no quantization scale", c->name,
                 role, (int)c->op->index);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    return KHIL_OK;
}

static khil_status want_ndim(op_ctx *c, const tensor_view *v, int ndim, const char *role)
{
    if (v->ndim != ndim) {
        khil_fmt(c->ld->err, c->ld->err_len, "%s %s (op %d) has %d dimensions, expected %d",
                 c->name, role, (int)c->op->index, (int)v->ndim, ndim);
        return KHIL_ERR_PARSE;
    }
    return KHIL_OK;
}

static khil_status want_const(op_ctx *c, const tensor_view *v, const char *role)
{
    if (v->data == NULL) {
        khil_fmt(c->ld->err, c->ld->err_len, "%s %s (op %d) is not a constant tensor",
                 c->name, role, (int)c->op->index);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    return KHIL_OK;
}

static khil_status shape_error(op_ctx *c, const char *what)
{
    khil_fmt(c->ld->err, c->ld->err_len, "%s (op %d): %s", c->name, (int)c->op->index, what);
    return KHIL_ERR_PARSE;
}

static void *op_params(op_ctx *c, size_t size)
{
    c->op->params = persist_alloc(c->ld, size);
    return c->op->params;
}

/* TFLite ComputeOutSize (in 64 bits: corrupt models must not overflow). */
static int64_t out_size(int padding, int64_t in, int64_t filter, int64_t stride, int64_t dilation)
{
    int64_t effective = (filter - 1) * dilation + 1;
    return padding == KHIL_PAD_SAME ? (in + stride - 1) / stride
                                    : (in + stride - effective) / stride;
}

/* TFLite ComputePaddingWithOffset (the reference kernels only use the returned half). */
static int32_t padding_before(int64_t stride, int64_t dilation, int64_t in, int64_t filter,
                              int64_t out)
{
    int64_t effective = (filter - 1) * dilation + 1;
    int64_t total = (out - 1) * stride + effective - in;
    return total > 0 ? (int32_t)(total / 2) : 0;
}

static khil_status check_activation(op_ctx *c, int act)
{
    if (act != KHIL_ACT_NONE && act != KHIL_ACT_RELU && act != KHIL_ACT_RELU6 &&
        act != KHIL_ACT_RELU_N1_TO_1) {
        khil_fmt(c->ld->err, c->ld->err_len, "%s (op %d): unsupported fused activation %d",
                 c->name, (int)c->op->index, act);
        return KHIL_ERR_UNSUPPORTED_OP;
    }
    return KHIL_OK;
}

/* The optional bias: int32, one per output channel, constant. */
static khil_status check_bias(op_ctx *c, int32_t channels, const uint8_t **bias)
{
    *bias = NULL;
    if (c->in[2] < 0) {
        return KHIL_OK;
    }
    const tensor_view *b = &c->v[2];
    CHECK(want_type(c, b, KHIL_TYPE_INT32, "bias"));
    CHECK(want_const(c, b, "bias"));
    if (b->elems != (uint32_t)channels) {
        return shape_error(c, "bias size differs from the number of output channels");
    }
    *bias = b->data;
    return KHIL_OK;
}

/* Per-channel requantisation, as LiteRT's PopulateConvolutionQuantizationParams (and the FC
 * Prepare): effective_scale = double(input_scale) * double(filter_scale[c]) / double(output).
 * For FULLY_CONNECTED (mant/exp2 non-NULL) the double scale itself is kept: LiteRT's reference
 * FC requantises with round(double(acc) * effective_scale). */
static khil_status requant_multipliers(op_ctx *c, int32_t channels, int32_t quant_dim,
                                       int32_t **mult, int8_t **shift, int32_t *per_channel,
                                       uint64_t **mant, int32_t **exp2, float **fp32_scale)
{
    const tensor_view *in = &c->v[0], *f = &c->v[1], *out = &c->vo;
    int pc = f->num_scales > 1;
    if (pc && (f->num_scales != (uint32_t)channels || f->quant_dim != quant_dim)) {
        return shape_error(c, "per-channel filter scales do not match the output channels");
    }
    if (pc && !f->zero_points_all_zero) {
        khil_fmt(c->ld->err, c->ld->err_len,
                 "%s filter (op %d) has non-zero per-channel zero points", c->name,
                 (int)c->op->index);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    int32_t n = pc ? channels : 1;
    if (mult != NULL) {
        *mult = persist_alloc(c->ld, (size_t)n * sizeof(int32_t));
        *shift = persist_alloc(c->ld, (size_t)n * sizeof(int8_t));
        if (*mult == NULL || *shift == NULL) {
            return fail_arena_metadata(c->ld);
        }
    }
    if (mant != NULL) {
        *mant = persist_alloc(c->ld, (size_t)n * sizeof(uint64_t));
        *exp2 = persist_alloc(c->ld, (size_t)n * sizeof(int32_t));
        if (*mant == NULL || *exp2 == NULL) {
            return fail_arena_metadata(c->ld);
        }
    }
    if (fp32_scale != NULL) {
        *fp32_scale = persist_alloc(c->ld, (size_t)n * sizeof(float));
        if (*fp32_scale == NULL) {
            return fail_arena_metadata(c->ld);
        }
    }
    *per_channel = pc;
    int single = (c->ld->variant & KHIL_VARIANT_SINGLE_ROUNDING) != 0;
    for (int32_t i = 0; i < n; i++) {
        float fs = khil_fb_read_f32(f->channel_scales + 4u * (uint32_t)i);
        if (!khil_scale_ok(fs)) {
            return shape_error(c, "filter scale is not a positive finite number");
        }
        double eff;
        if (c->ld->variant & KHIL_VARIANT_FLOAT_SCALE_PRODUCT) {
            eff = (double)(in->scale * fs) / (double)out->scale;
        } else {
            eff = (double)in->scale * (double)fs / (double)out->scale;
        }
        int32_t m;
        int s;
        if (khil_quantize_multiplier(eff, &m, &s, single) != 0 || s > 30) {
            return shape_error(c, "effective requantisation scale out of range");
        }
        if (mult != NULL) {
            (*mult)[i] = m;
            (*shift)[i] = (int8_t)s;
        }
        if (mant != NULL) {
            khil_double_parts(eff, &(*mant)[i], &(*exp2)[i]);
        }
        if (fp32_scale != NULL) {
            (*fp32_scale)[i] = in->scale * fs / out->scale;
        }
    }
    return KHIL_OK;
}

/* CONV_2D's live-channel bitmap (khil_conv_params.live): persistent only when some output
 * channel has all-zero weights, so models without such channels pay nothing. */
static khil_status conv_live_channels(op_ctx *c, khil_conv_params *p)
{
    const uint32_t row = (uint32_t)(p->k_h * p->k_w * p->f_in_c);
    int32_t dead = 0;
    for (int32_t o = 0; o < p->out_c && !dead; o++) {
        const int8_t *w = p->weights + (uint32_t)o * row;
        uint32_t i = 0;
        while (i < row && w[i] == 0) {
            i++;
        }
        dead = i == row;
    }
    if (!dead) {
        return KHIL_OK;
    }
    const uint32_t words = ((uint32_t)p->out_c + 31u) / 32u;
    uint32_t *live = persist_alloc(c->ld, words * sizeof(uint32_t));
    if (live == NULL) {
        return fail_arena_metadata(c->ld);
    }
    memset(live, 0, words * sizeof(uint32_t));
    for (int32_t o = 0; o < p->out_c; o++) {
        const int8_t *w = p->weights + (uint32_t)o * row;
        for (uint32_t i = 0; i < row; i++) {
            if (w[i] != 0) {
                live[o >> 5] |= 1u << (o & 31);
                break;
            }
        }
    }
    p->live = live;
    return KHIL_OK;
}

static khil_status prepare_conv(op_ctx *c, khil_fb_table opt, int depthwise)
{
    khil_fb *fb = &c->ld->fb;
    if (c->in[0] < 0 || c->in[1] < 0) {
        return shape_error(c, "missing input or filter");
    }
    const tensor_view *in = &c->v[0], *f = &c->v[1], *out = &c->vo;
    CHECK(want_type(c, in, KHIL_TYPE_INT8, "input"));
    CHECK(want_type(c, f, KHIL_TYPE_INT8, "filter"));
    CHECK(want_type(c, out, KHIL_TYPE_INT8, "output"));
    CHECK(want_quantized(c, in, "input"));
    CHECK(want_quantized(c, f, "filter"));
    CHECK(want_quantized(c, out, "output"));
    CHECK(want_const(c, f, "filter"));
    CHECK(want_ndim(c, in, 4, "input"));
    CHECK(want_ndim(c, f, 4, "filter"));
    CHECK(want_ndim(c, out, 4, "output"));
    khil_conv_params *p = op_params(c, sizeof(khil_conv_params));
    if (p == NULL) {
        return fail_arena_metadata(c->ld);
    }
    int padding = khil_fb_u8(fb, &opt, 0, 0);
    p->stride_w = khil_fb_i32(fb, &opt, 1, 0);
    p->stride_h = khil_fb_i32(fb, &opt, 2, 0);
    int act;
    if (depthwise) {
        act = khil_fb_u8(fb, &opt, 4, 0);
        p->dilation_w = khil_fb_i32(fb, &opt, 5, 1);
        p->dilation_h = khil_fb_i32(fb, &opt, 6, 1);
    } else {
        act = khil_fb_u8(fb, &opt, 3, 0);
        p->dilation_w = khil_fb_i32(fb, &opt, 4, 1);
        p->dilation_h = khil_fb_i32(fb, &opt, 5, 1);
    }
    if (fb->bad) {
        return fail_corrupt(c->ld, "operator options");
    }
    CHECK(check_activation(c, act));
    if (padding > KHIL_PAD_VALID || p->stride_w < 1 || p->stride_h < 1 || p->dilation_w < 1 ||
        p->dilation_h < 1 || p->stride_w > 4096 || p->stride_h > 4096 || p->dilation_w > 4096 ||
        p->dilation_h > 4096) {
        return shape_error(c, "invalid padding, stride or dilation");
    }
    p->batches = in->dims[0];
    p->in_h = in->dims[1];
    p->in_w = in->dims[2];
    p->in_c = in->dims[3];
    p->k_h = f->dims[1];
    p->k_w = f->dims[2];
    p->f_in_c = f->dims[3];
    p->out_h = out->dims[1];
    p->out_w = out->dims[2];
    p->out_c = out->dims[3];
    if (out->dims[0] != p->batches || p->k_h < 1 || p->k_w < 1 || p->in_c < 1 || p->out_c < 1) {
        return shape_error(c, "inconsistent shapes");
    }
    if (depthwise) {
        if (f->dims[0] != 1 || f->dims[3] != p->out_c || p->out_c % p->in_c != 0) {
            return shape_error(c, "filter shape does not match input and output channels");
        }
        p->depth_multiplier = p->out_c / p->in_c;
    } else {
        if (f->dims[0] != p->out_c || p->f_in_c < 1 || p->in_c % p->f_in_c != 0 ||
            p->out_c % (p->in_c / p->f_in_c) != 0) {
            return shape_error(c, "filter shape does not match input and output channels");
        }
    }
    if ((int64_t)(p->k_h - 1) * p->dilation_h + 1 > MAX_FILTER_EXTENT ||
        (int64_t)(p->k_w - 1) * p->dilation_w + 1 > MAX_FILTER_EXTENT) {
        return shape_error(c, "filter extent too large");
    }
    int64_t oh = out_size(padding, p->in_h, p->k_h, p->stride_h, p->dilation_h);
    int64_t ow = out_size(padding, p->in_w, p->k_w, p->stride_w, p->dilation_w);
    if (oh != p->out_h || ow != p->out_w) {
        return shape_error(c, "output size does not follow from padding and strides");
    }
    p->pad_h = padding_before(p->stride_h, p->dilation_h, p->in_h, p->k_h, oh);
    p->pad_w = padding_before(p->stride_w, p->dilation_w, p->in_w, p->k_w, ow);
    CHECK(check_bias(c, p->out_c, &p->bias));
    p->weights = (const int8_t *)f->data;
    p->live = NULL;
    if (!depthwise) {
        CHECK(conv_live_channels(c, p));
    }
    p->input_offset = -in->zero_point;
    p->output_offset = out->zero_point;
    khil_activation_range_int8(act, out->scale, out->zero_point, &p->act_min, &p->act_max);
#ifdef KHIL_VARIANTS
    float **fp32 = (c->ld->variant & KHIL_VARIANT_FP32_REQUANT) ? &p->fp32_scale : NULL;
#else
    float **fp32 = NULL;
#endif
    return requant_multipliers(c, p->out_c, depthwise ? 3 : 0, &p->mult, &p->shift,
                               &p->per_channel, NULL, NULL, fp32);
}

static khil_status prepare_fully_connected(op_ctx *c, khil_fb_table opt)
{
    khil_op *op = c->op;
    khil_fb *fb = &c->ld->fb;
    if (c->in[0] < 0 || c->in[1] < 0) {
        return shape_error(c, "missing input or weights");
    }
    const tensor_view *in = &c->v[0], *w = &c->v[1], *out = &c->vo;
    CHECK(want_type(c, in, KHIL_TYPE_INT8, "input"));
    CHECK(want_type(c, w, KHIL_TYPE_INT8, "weights"));
    CHECK(want_type(c, out, KHIL_TYPE_INT8, "output"));
    CHECK(want_quantized(c, in, "input"));
    CHECK(want_quantized(c, w, "weights"));
    CHECK(want_quantized(c, out, "output"));
    CHECK(want_const(c, w, "weights"));
    CHECK(want_ndim(c, w, 2, "weights"));
    int act = khil_fb_u8(fb, &opt, 0, 0);
    int weights_format = khil_fb_u8(fb, &opt, 1, 0);
    if (fb->bad) {
        return fail_corrupt(c->ld, "operator options");
    }
    CHECK(check_activation(c, act));
    if (weights_format != 0) {
        khil_fmt(c->ld->err, c->ld->err_len,
                 "FULLY_CONNECTED (op %d): shuffled weights format %d not supported",
                 (int)op->index, weights_format);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    khil_fc_params *p = op_params(c, sizeof(khil_fc_params));
    if (p == NULL) {
        return fail_arena_metadata(c->ld);
    }
    p->output_depth = w->dims[0];
    p->accum_depth = w->dims[1];
    if (p->accum_depth < 1 || p->output_depth < 1 || in->elems % (uint32_t)p->accum_depth != 0) {
        return shape_error(c, "input size is not a multiple of the weights' depth");
    }
    p->batches = (int32_t)(in->elems / (uint32_t)p->accum_depth);
    if (out->elems != (uint32_t)p->batches * (uint32_t)p->output_depth) {
        return shape_error(c, "output size differs from batches x units");
    }
    if (w->num_scales <= 1 && (w->zero_point < -128 || w->zero_point > 127)) {
        return shape_error(c, "weights zero point out of int8 range");
    }
    CHECK(check_bias(c, p->output_depth, &p->bias));
    p->weights = (const int8_t *)w->data;
    p->input_offset = -in->zero_point;
    p->filter_offset = w->num_scales > 1 ? 0 : -w->zero_point;
    p->output_offset = out->zero_point;
    khil_activation_range_int8(act, out->scale, out->zero_point, &p->act_min, &p->act_max);
#ifdef KHIL_VARIANTS
    int32_t **mult = (c->ld->variant & KHIL_VARIANT_FC_FIXED_POINT) ? &p->mult : NULL;
    float **fp32 = (c->ld->variant & KHIL_VARIANT_FP32_REQUANT) ? &p->fp32_scale : NULL;
    int8_t **shift = &p->shift;
#else
    int32_t **mult = NULL;
    float **fp32 = NULL;
    int8_t **shift = NULL;
#endif
    return requant_multipliers(c, p->output_depth, 0, mult, shift, &p->per_channel,
                               &p->scale_mant, &p->scale_exp, fp32);
}

static khil_status prepare_average_pool(op_ctx *c, khil_fb_table opt)
{
    khil_op *op = c->op;
    khil_fb *fb = &c->ld->fb;
    if (c->in[0] < 0) {
        return shape_error(c, "missing input");
    }
    const tensor_view *in = &c->v[0], *out = &c->vo;
    CHECK(want_type(c, in, KHIL_TYPE_INT8, "input"));
    CHECK(want_type(c, out, KHIL_TYPE_INT8, "output"));
    CHECK(want_quantized(c, out, "output"));
    CHECK(want_ndim(c, in, 4, "input"));
    CHECK(want_ndim(c, out, 4, "output"));
    khil_pool_params *p = op_params(c, sizeof(khil_pool_params));
    if (p == NULL) {
        return fail_arena_metadata(c->ld);
    }
    int padding = khil_fb_u8(fb, &opt, 0, 0);
    p->stride_w = khil_fb_i32(fb, &opt, 1, 0);
    p->stride_h = khil_fb_i32(fb, &opt, 2, 0);
    p->filter_w = khil_fb_i32(fb, &opt, 3, 0);
    p->filter_h = khil_fb_i32(fb, &opt, 4, 0);
    int act = khil_fb_u8(fb, &opt, 5, 0);
    if (fb->bad) {
        return fail_corrupt(c->ld, "operator options");
    }
    CHECK(check_activation(c, act));
    if (padding > KHIL_PAD_VALID || p->stride_w < 1 || p->stride_h < 1 || p->filter_w < 1 ||
        p->filter_h < 1 || p->stride_w > 4096 || p->stride_h > 4096 || p->filter_w > 4096 ||
        p->filter_h > 4096) {
        return shape_error(c, "invalid padding, stride or filter size");
    }
    if (in->scale != out->scale || in->zero_point != out->zero_point) {
        khil_fmt(c->ld->err, c->ld->err_len,
                 "AVERAGE_POOL_2D (op %d): input and output quantization differ", (int)op->index);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    p->batches = in->dims[0];
    p->in_h = in->dims[1];
    p->in_w = in->dims[2];
    p->channels = in->dims[3];
    p->out_h = out->dims[1];
    p->out_w = out->dims[2];
    int64_t oh = out_size(padding, p->in_h, p->filter_h, p->stride_h, 1);
    int64_t ow = out_size(padding, p->in_w, p->filter_w, p->stride_w, 1);
    if (out->dims[0] != p->batches || out->dims[3] != p->channels || oh != p->out_h ||
        ow != p->out_w) {
        return shape_error(c, "output shape does not follow from input, padding and strides");
    }
    p->pad_h = padding_before(p->stride_h, 1, p->in_h, p->filter_h, oh);
    p->pad_w = padding_before(p->stride_w, 1, p->in_w, p->filter_w, ow);
    khil_activation_range_int8(act, out->scale, out->zero_point, &p->act_min, &p->act_max);
    return KHIL_OK;
}

/* LiteRT add.cc Prepare, int8 path: inputs rescaled to twice the larger input scale with
 * left_shift 20, then the sum requantised to the output. */
static khil_status prepare_add(op_ctx *c, khil_fb_table opt)
{
    khil_fb *fb = &c->ld->fb;
    if (c->in[0] < 0 || c->in[1] < 0) {
        return shape_error(c, "missing input");
    }
    const tensor_view *a = &c->v[0], *b = &c->v[1], *out = &c->vo;
    CHECK(want_type(c, a, KHIL_TYPE_INT8, "input1"));
    CHECK(want_type(c, b, KHIL_TYPE_INT8, "input2"));
    CHECK(want_type(c, out, KHIL_TYPE_INT8, "output"));
    CHECK(want_quantized(c, a, "input1"));
    CHECK(want_quantized(c, b, "input2"));
    CHECK(want_quantized(c, out, "output"));
    int act = khil_fb_u8(fb, &opt, 0, 0);
    if (fb->bad) {
        return fail_corrupt(c->ld, "operator options");
    }
    CHECK(check_activation(c, act));
    khil_add_params *p = op_params(c, sizeof(khil_add_params));
    if (p == NULL) {
        return fail_arena_metadata(c->ld);
    }
    /* Broadcast check: aligned from the last dimension, each pair equal or one of them 1. */
    const int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    if (out->ndim != nd) {
        return shape_error(c, "output rank differs from the broadcast rank");
    }
    int broadcast = a->ndim != b->ndim;
    int32_t sa = 1, sb = 1;
    for (int i = nd - 1; i >= 0; i--) {
        const int32_t da = i < nd - a->ndim ? 1 : a->dims[i - (nd - a->ndim)];
        const int32_t db = i < nd - b->ndim ? 1 : b->dims[i - (nd - b->ndim)];
        if ((da != db && da != 1 && db != 1) || out->dims[i] != (da == 1 ? db : da)) {
            return shape_error(c, "input shapes are not broadcast-compatible with the output");
        }
        broadcast |= da != db;
        p->out_dims[i] = out->dims[i];
        p->stride1[i] = da == 1 ? 0 : sa;
        p->stride2[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
    }
    p->ndim = broadcast ? nd : 0;
    p->elems = out->elems;
    p->input1_offset = -a->zero_point;
    p->input2_offset = -b->zero_point;
    p->output_offset = out->zero_point;
    p->left_shift = 20;
    const float max_scale = a->scale > b->scale ? a->scale : b->scale;
    const double twice_max = 2.0 * (double)max_scale;
    const double real1 = (double)a->scale / twice_max;
    const double real2 = (double)b->scale / twice_max;
    const double real_out = twice_max / ((double)(1 << p->left_shift) * (double)out->scale);
    int single = (c->ld->variant & KHIL_VARIANT_SINGLE_ROUNDING) != 0;
    int s1, s2, s3;
    int bad = khil_quantize_multiplier(real1, &p->input1_multiplier, &s1, single);
    bad |= khil_quantize_multiplier(real2, &p->input2_multiplier, &s2, single);
    bad |= khil_quantize_multiplier(real_out, &p->output_multiplier, &s3, single);
    p->input1_shift = s1;
    p->input2_shift = s2;
    p->output_shift = s3;
    if (bad || s1 > 0 || s2 > 0 || s3 > 0) {
        return shape_error(c, "quantization scales need a multiplier above one");
    }
    khil_activation_range_int8(act, out->scale, out->zero_point, &p->act_min, &p->act_max);
    return KHIL_OK;
}

static khil_status prepare_reshape(op_ctx *c)
{
    if (c->in[0] < 0) {
        return shape_error(c, "missing input");
    }
    const tensor_view *in = &c->v[0], *out = &c->vo;
    if (in->type != out->type) {
        return shape_error(c, "input and output types differ");
    }
    if (type_size(in->type) == 0) {
        return want_type(c, in, KHIL_TYPE_INT8, "input");
    }
    if (in->elems != out->elems) {
        return shape_error(c, "input and output sizes differ");
    }
    /* The output shares the input's memory; the shape input is not needed at run time. */
    c->ld->plan[c->out].alias_of = (int16_t)c->in[0];
    return KHIL_OK;
}

/* LiteRT activations.cc SoftmaxPrepare, kReference int8 path (PreprocessSoftmaxScaling). */
static khil_status prepare_softmax(op_ctx *c, khil_fb_table opt)
{
    khil_fb *fb = &c->ld->fb;
    if (c->in[0] < 0) {
        return shape_error(c, "missing input");
    }
    const tensor_view *in = &c->v[0], *out = &c->vo;
    CHECK(want_type(c, in, KHIL_TYPE_INT8, "input"));
    CHECK(want_type(c, out, KHIL_TYPE_INT8, "output"));
    CHECK(want_quantized(c, in, "input"));
    CHECK(want_quantized(c, out, "output"));
    float beta = khil_fb_f32(fb, &opt, 0, 0.0f);
    if (fb->bad) {
        return fail_corrupt(c->ld, "operator options");
    }
    if (in->ndim < 1 || in->elems != out->elems || in->ndim != out->ndim ||
        in->dims[in->ndim - 1] < 1) {
        return shape_error(c, "input and output shapes differ");
    }
    const float want = 1.0f / 256;
    float d = out->scale - want;
    if (out->zero_point != -128 || d > 0.001f * want || d < -0.001f * want) {
        khil_fmt(c->ld->err, c->ld->err_len,
                 "SOFTMAX (op %d): int8 output must have scale 1/256 and zero point -128",
                 (int)c->op->index);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    khil_softmax_params *p = op_params(c, sizeof(khil_softmax_params));
    if (p == NULL) {
        return fail_arena_metadata(c->ld);
    }
    p->depth = in->dims[in->ndim - 1];
    p->outer = (int32_t)(in->elems / (uint32_t)p->depth);
    const int scaled_diff_integer_bits = 5;
    int single = (c->ld->variant & KHIL_VARIANT_SINGLE_ROUNDING) != 0;
    const double max_real = single ? (double)(1LL << 30) - 1.0 : (double)(1LL << 31) - 1.0;
    double real = (double)beta * (double)in->scale *
                  (double)(1 << (31 - scaled_diff_integer_bits));
    if (real > max_real) {
        real = max_real;
    }
    int shift;
    if (khil_quantize_multiplier(real, &p->input_multiplier, &shift, single) != 0 || shift < 0 ||
        shift > 30) {
        return shape_error(c, "input scale times beta is out of range");
    }
    p->input_left_shift = shift;
    /* CalculateInputRadius(5, shift): floor(31 * 2^26 / 2^shift) */
    const double radius = 1.0 * ((1 << scaled_diff_integer_bits) - 1) *
                          (double)(1LL << (31 - scaled_diff_integer_bits)) /
                          (double)(1LL << shift);
    p->diff_min = -(int32_t)radius; /* radius >= 0: truncation is floor */
    return KHIL_OK;
}

/* ---------------------------------------------------------------- operator table */

/* Type markers of the operator table besides TensorType codes. */
#define KHIL_TYPE_NONE (-1) /* not checked */
#define KHIL_TYPE_ANY (-2)  /* any type with a known element size */

typedef struct {
    int32_t builtin;
    const char *role[3];
    int16_t type[3];
    int16_t out_type;
} op_spec;

/* Which operators load and which tensor types they take: khil_ops.def, the table the host
 * reads too (so it can refuse a model the board would refuse, before uploading it). */
static const op_spec op_specs[] = {
#define KHIL_OP(name, code, r0, t0, r1, t1, r2, t2, tout)                                          \
    {code, {#r0, #r1, #r2}, {KHIL_TYPE_##t0, KHIL_TYPE_##t1, KHIL_TYPE_##t2}, KHIL_TYPE_##tout},
#include "khil_ops.def"
#undef KHIL_OP
};

static const op_spec *find_op_spec(int32_t builtin)
{
    for (size_t i = 0; i < sizeof op_specs / sizeof op_specs[0]; i++) {
        if (op_specs[i].builtin == builtin) {
            return &op_specs[i];
        }
    }
    return NULL;
}

static khil_status want_spec_type(op_ctx *c, const tensor_view *v, int16_t type,
                                  const char *role)
{
    if (type == KHIL_TYPE_NONE) {
        return KHIL_OK;
    }
    if (type == KHIL_TYPE_ANY) {
        return type_size(v->type) != 0 ? KHIL_OK : want_type(c, v, KHIL_TYPE_INT8, role);
    }
    return want_type(c, v, (uint8_t)type, role);
}

/* Every present input and the output against the table, inputs first, in order. */
static khil_status check_op_types(op_ctx *c, const op_spec *spec)
{
    for (int k = 0; k < 3; k++) {
        if (c->in[k] >= 0) {
            CHECK(want_spec_type(c, &c->v[k], spec->type[k], spec->role[k]));
        }
    }
    return want_spec_type(c, &c->vo, spec->out_type, "output");
}

/* ---------------------------------------------------------------- operators */

static khil_status read_op_tensors(loader *ld, khil_fb_table ot, op_ctx *c, int32_t index)
{
    khil_fb *fb = &ld->fb;
    khil_fb_vector ins = khil_fb_vec(fb, &ot, OP_INPUTS, 4);
    khil_fb_vector outs = khil_fb_vec(fb, &ot, OP_OUTPUTS, 4);
    if (fb->bad) {
        return fail_corrupt(ld, "an operator");
    }
    c->in[0] = c->in[1] = c->in[2] = -1;
    if (ins.count > 3 || outs.count != 1) {
        khil_fmt(ld->err, ld->err_len, "%s (op %d) has %u inputs and %u outputs", c->name,
                 (int)index, (unsigned)ins.count, (unsigned)outs.count);
        return KHIL_ERR_PARSE;
    }
    const int32_t n = ld->ip->num_tensors;
    for (uint32_t i = 0; i < ins.count; i++) {
        int32_t ti = khil_fb_vec_i32(fb, ins, i);
        if (ti < -1 || ti >= n) {
            khil_fmt(ld->err, ld->err_len, "op %d input %u refers to tensor %d of %d",
                     (int)index, (unsigned)i, (int)ti, (int)n);
            return KHIL_ERR_PARSE;
        }
        c->in[i] = ti;
        if (ti >= 0) {
            CHECK(view_tensor(ld, ti, &c->v[i]));
        }
    }
    c->out = khil_fb_vec_i32(fb, outs, 0);
    if (c->out < 0 || c->out >= n) {
        khil_fmt(ld->err, ld->err_len, "op %d output refers to tensor %d of %d", (int)index,
                 (int)c->out, (int)n);
        return KHIL_ERR_PARSE;
    }
    CHECK(view_tensor(ld, c->out, &c->vo));
    if (ld->plan[c->out].is_const) {
        khil_fmt(ld->err, ld->err_len, "op %d writes to constant tensor %d", (int)index,
                 (int)c->out);
        return KHIL_ERR_PARSE;
    }
    for (int i = 0; i < 3; i++) {
        if (c->in[i] == c->out) {
            khil_fmt(ld->err, ld->err_len, "op %d reads and writes tensor %d", (int)index,
                     (int)c->out);
            return KHIL_ERR_PARSE;
        }
    }
    return KHIL_OK;
}

static uint32_t scratch_bytes(const khil_op *op)
{
    switch ((khil_op_kind)op->kind) {
    case KHIL_OP_CONV:
        return khil_conv_scratch_bytes(op->params);
    case KHIL_OP_DEPTHWISE:
        return khil_depthwise_scratch_bytes(op->params);
    case KHIL_OP_FULLY_CONNECTED:
        return khil_fully_connected_scratch_bytes(op->params);
    default:
        return 0;
    }
}

static khil_status parse_op(loader *ld, khil_fb_vector opcodes, khil_fb_table ot, int32_t index)
{
    khil_fb *fb = &ld->fb;
    khil_op *op = &ld->ip->ops[index];
    op->index = (int16_t)index;
    op->in[0] = op->in[1] = op->out = -1;
    uint32_t opcode_index = khil_fb_u32(fb, &ot, OP_OPCODE_INDEX, 0);
    if (fb->bad) {
        return fail_corrupt(ld, "an operator");
    }
    if (opcode_index >= opcodes.count) {
        khil_fmt(ld->err, ld->err_len, "op %d uses operator code %u of %u", (int)index,
                 (unsigned)opcode_index, (unsigned)opcodes.count);
        return KHIL_ERR_PARSE;
    }
    khil_fb_table oc = khil_fb_vec_table(fb, opcodes, opcode_index);
    int32_t deprecated = (int8_t)khil_fb_u8(fb, &oc, OPCODE_DEPRECATED_BUILTIN, 0);
    int32_t builtin = khil_fb_i32(fb, &oc, OPCODE_BUILTIN, 0);
    if (fb->bad) {
        return fail_corrupt(ld, "an operator code");
    }
    if (deprecated > builtin) { /* schema v3a: the larger of the two fields is the code */
        builtin = deprecated;
    }
    const op_spec *spec = find_op_spec(builtin);
    switch (builtin) { /* the cases are the table's names (KHIL_BUILTIN_*) */
    case KHIL_BUILTIN_CONV_2D:
        op->kind = KHIL_OP_CONV;
        break;
    case KHIL_BUILTIN_DEPTHWISE_CONV_2D:
        op->kind = KHIL_OP_DEPTHWISE;
        break;
    case KHIL_BUILTIN_FULLY_CONNECTED:
        op->kind = KHIL_OP_FULLY_CONNECTED;
        break;
    case KHIL_BUILTIN_AVERAGE_POOL_2D:
        op->kind = KHIL_OP_AVERAGE_POOL;
        break;
    case KHIL_BUILTIN_ADD:
        op->kind = KHIL_OP_ADD;
        break;
    case KHIL_BUILTIN_RESHAPE:
        op->kind = KHIL_OP_RESHAPE;
        break;
    case KHIL_BUILTIN_SOFTMAX:
        op->kind = KHIL_OP_SOFTMAX;
        break;
    case BUILTIN_CUSTOM: {
        khil_fb_vector name = khil_fb_vec(fb, &oc, OPCODE_CUSTOM_CODE, 1);
        char buf[40];
        uint32_t n = name.count < sizeof buf - 1 ? name.count : (uint32_t)sizeof buf - 1;
        for (uint32_t i = 0; i < n && !fb->bad; i++) {
            char ch = (char)fb->buf[name.pos + i];
            buf[i] = (ch >= 32 && ch < 127) ? ch : '?';
        }
        buf[fb->bad ? 0 : n] = 0;
        khil_fmt(ld->err, ld->err_len, "unsupported custom operator '%s' in subgraph 0 op %d",
                 buf, (int)index);
        return KHIL_ERR_UNSUPPORTED_OP;
    }
    default:
        khil_fmt(ld->err, ld->err_len, "unsupported operator %s (builtin %d) in subgraph 0 op %d",
                 khil_op_name(builtin), (int)builtin, (int)index);
        return KHIL_ERR_UNSUPPORTED_OP;
    }
    op->builtin = (uint8_t)builtin;
#ifdef KHIL_VARIANTS
    op->variant = ld->variant;
#endif
    op_ctx c;
    memset(&c, 0, sizeof c);
    c.ld = ld;
    c.op = op;
    c.name = khil_op_name(builtin);
    CHECK(read_op_tensors(ld, ot, &c, index));
    if (spec == NULL) { /* a case above without a table entry cannot compile; be safe */
        khil_fmt(ld->err, ld->err_len, "unsupported operator %s (builtin %d) in subgraph 0 op %d",
                 khil_op_name(builtin), (int)builtin, (int)index);
        return KHIL_ERR_UNSUPPORTED_OP;
    }
    CHECK(check_op_types(&c, spec));
    /* Data flow: every tensor read is constant, a model input or written by an earlier op
     * (plan[].first marks "written" while operators are parsed). */
    for (int k = 0; k < 3; k++) {
        const int32_t ti = c.in[k];
        if (ti >= 0 && !ld->plan[ti].is_const && ld->plan[ti].first == -2) {
            khil_fmt(ld->err, ld->err_len, "op %d reads tensor %d before anything writes it",
                     (int)index, (int)ti);
            return KHIL_ERR_PARSE;
        }
    }
    if (ld->plan[c.out].first != -2) {
        khil_fmt(ld->err, ld->err_len, "tensor %d is written twice (op %d)", (int)c.out,
                 (int)index);
        return KHIL_ERR_PARSE;
    }
    ld->plan[c.out].first = (int16_t)index;
    khil_fb_table opt = khil_fb_subtable(fb, &ot, OP_BUILTIN_OPTIONS);
    if (fb->bad) {
        return fail_corrupt(ld, "operator options");
    }
    khil_status s;
    switch ((khil_op_kind)op->kind) {
    case KHIL_OP_CONV:
        s = prepare_conv(&c, opt, 0);
        break;
    case KHIL_OP_DEPTHWISE:
        s = prepare_conv(&c, opt, 1);
        break;
    case KHIL_OP_FULLY_CONNECTED:
        s = prepare_fully_connected(&c, opt);
        break;
    case KHIL_OP_AVERAGE_POOL:
        s = prepare_average_pool(&c, opt);
        break;
    case KHIL_OP_ADD:
        s = prepare_add(&c, opt);
        break;
    case KHIL_OP_RESHAPE:
        s = prepare_reshape(&c);
        break;
    default:
        s = prepare_softmax(&c, opt);
        break;
    }
    CHECK(s);
    /* Run-time records: the activation inputs (ADD reads two) and the output. Weights and
     * biases are reached through the parameter block. */
    op->in[0] = (int16_t)c.in[0];
    ld->plan[c.in[0]].needs_record = 1;
    if (op->kind == KHIL_OP_ADD) {
        op->in[1] = (int16_t)c.in[1];
        ld->plan[c.in[1]].needs_record = 1;
    }
    op->out = (int16_t)c.out;
    ld->plan[c.out].needs_record = 1;
    khil_plan_entry *scratch = &ld->plan[ld->ip->num_tensors + index];
    scratch->bytes = scratch_bytes(op);
    scratch->planned = scratch->bytes > 0;
    scratch->first = scratch->last = (int16_t)index;
    scratch->alias_of = -1;
    scratch->record = -1;
    return KHIL_OK;
}

/* ---------------------------------------------------------------- planning */

static int32_t alias_root(const khil_plan_entry *e, int32_t i)
{
    int guard = 0;
    while (e[i].alias_of >= 0 && guard++ < 1 << 16) {
        i = e[i].alias_of;
    }
    return i;
}

static void extend_life(loader *ld, int32_t i, int32_t at)
{
    khil_plan_entry *r = &ld->plan[alias_root(ld->plan, i)];
    if (r->is_const) {
        return;
    }
    r->planned = 1;
    if (r->first < 0 || at < r->first) {
        r->first = (int16_t)at;
    }
    if (at > r->last) {
        r->last = (int16_t)at;
    }
}

/* Model tensor indices in ops and IO become run-time record indices. */
static khil_status make_records(loader *ld)
{
    khil_interp *ip = ld->ip;
    int32_t count = 0;
    for (int32_t i = 0; i < ip->num_tensors; i++) {
        ld->plan[i].record = ld->plan[i].needs_record ? (int16_t)count++ : -1;
    }
    ip->tensors = persist_alloc(ld, sizeof(khil_tensor) * (size_t)(count ? count : 1));
    if (ip->tensors == NULL) {
        return fail_arena_metadata(ld);
    }
    ip->num_tensors = count;
    for (int32_t i = 0; i < (int32_t)ld->tensors.count; i++) {
        if (ld->plan[i].record < 0) {
            continue;
        }
        tensor_view v;
        CHECK(view_tensor(ld, i, &v));
        khil_tensor *t = &ip->tensors[ld->plan[i].record];
        t->data = (uint8_t *)(uintptr_t)v.data; /* constants are only read */
        t->shape = v.shape;
        t->bytes = v.bytes;
        t->type = v.type;
        t->ndim = v.ndim;
        t->scale = v.scale;
        t->zero_point = v.zero_point;
    }
    return KHIL_OK;
}

static khil_status plan(loader *ld, int keep_inputs)
{
    khil_interp *ip = ld->ip;
    const int32_t n = (int32_t)ld->tensors.count;
    const int32_t end = ip->num_ops; /* "after the last op": outputs must survive invoke */
    for (int32_t i = 0; i < n; i++) {
        ld->plan[i].first = -1;
        ld->plan[i].last = -1;
    }
    for (int32_t i = 0; i < ip->num_ops; i++) {
        khil_op *op = &ip->ops[i];
        for (int k = 0; k < 2; k++) {
            if (op->in[k] >= 0) {
                extend_life(ld, op->in[k], i);
            }
        }
        extend_life(ld, op->out, i);
    }
    for (int i = 0; i < ip->num_inputs; i++) {
        extend_life(ld, ip->inputs[i], 0);
        if (keep_inputs) {
            extend_life(ld, ip->inputs[i], end);
        }
    }
    for (int i = 0; i < ip->num_outputs; i++) {
        extend_life(ld, ip->outputs[i], end);
    }
    const uint64_t activation_bytes = khil_plan_memory(ld->plan, n + ip->num_ops,
                                                       ACTIVATION_ALIGN);
    /* While loading, the bottom of the arena held the planner's entries instead. */
    uint64_t bottom = activation_bytes > ld->scratch_used ? activation_bytes : ld->scratch_used;
    uint64_t needed64 = activation_bytes == UINT64_MAX
                            ? UINT64_MAX
                            : (uint64_t)(ld->base - ip->arena) + bottom + ld->persist_used;
    size_t needed = needed64 > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)needed64;
    if (activation_bytes == UINT64_MAX || bottom + ld->persist_used > ld->usable) {
        khil_fmt(ld->err, ld->err_len, "model needs %z arena bytes, arena has %z", needed,
                 ip->arena_len);
        return KHIL_ERR_ARENA;
    }
    ip->arena_peak = needed;
    ip->activation_bytes = (size_t)activation_bytes;
    ip->persistent_bytes = ld->persist_used;
    /* Entries are read before any activation memory is handed out (they live there). */
    for (int32_t i = 0; i < n; i++) {
        const int32_t r = ld->plan[i].record;
        const khil_plan_entry *root = &ld->plan[alias_root(ld->plan, i)];
        if (r >= 0 && root->planned) {
            ip->tensors[r].data = ld->base + root->offset;
        } else if (r >= 0 && root->record >= 0 && root != &ld->plan[i]) {
            ip->tensors[r].data = ip->tensors[root->record].data; /* alias of a constant */
        }
    }
    for (int32_t i = 0; i < ip->num_ops; i++) {
        const khil_plan_entry *s = &ld->plan[n + i];
        ip->ops[i].scratch = s->planned ? ld->base + s->offset : NULL;
    }
    return KHIL_OK;
}

/* Ops and IO switch from model tensor indices to run-time record indices. */
static void use_record_indices(loader *ld)
{
    khil_interp *ip = ld->ip;
    for (int32_t i = 0; i < ip->num_ops; i++) {
        khil_op *op = &ip->ops[i];
        for (int k = 0; k < 2; k++) {
            op->in[k] = op->in[k] >= 0 ? ld->plan[op->in[k]].record : -1;
        }
        op->out = ld->plan[op->out].record;
    }
    for (int i = 0; i < ip->num_inputs; i++) {
        ip->inputs[i] = ld->plan[ip->inputs[i]].record;
    }
    for (int i = 0; i < ip->num_outputs; i++) {
        ip->outputs[i] = ld->plan[ip->outputs[i]].record;
    }
}

/* ---------------------------------------------------------------- entry point */

static khil_status read_io(loader *ld, khil_fb_vector v, int32_t *dst, int *count,
                           const char *what)
{
    if (v.count > KHIL_MAX_IO) {
        khil_fmt(ld->err, ld->err_len, "model has %u %s, at most %d supported",
                 (unsigned)v.count, what, KHIL_MAX_IO);
        return KHIL_ERR_UNSUPPORTED_TYPE;
    }
    for (uint32_t i = 0; i < v.count; i++) {
        int32_t ti = khil_fb_vec_i32(&ld->fb, v, i);
        if (ti < 0 || ti >= (int32_t)ld->tensors.count) {
            khil_fmt(ld->err, ld->err_len, "model %s %u refers to tensor %d of %d", what,
                     (unsigned)i, (int)ti, (int)ld->tensors.count);
            return KHIL_ERR_PARSE;
        }
        tensor_view tv;
        CHECK(view_tensor(ld, ti, &tv));
        if (type_size(tv.type) == 0) {
            khil_fmt(ld->err, ld->err_len, "unsupported tensor type %s for model %s %u",
                     khil_type_name(tv.type), what, (unsigned)i);
            return KHIL_ERR_UNSUPPORTED_TYPE;
        }
        ld->plan[ti].needs_record = 1;
        dst[i] = ti;
    }
    *count = (int)v.count;
    return KHIL_OK;
}

khil_status khil_load_ex(khil_interp *ip, const uint8_t *model, size_t model_len, uint8_t *arena,
                         size_t arena_len, uint32_t flags, char *err, size_t err_len)
{
    if (err != NULL && err_len > 0) {
        err[0] = 0;
    }
    if (ip == NULL || model == NULL || arena == NULL) {
        khil_fmt(err, err_len, "khil_load: interpreter, model and arena must not be NULL");
        return KHIL_ERR_ARG;
    }
    memset(ip, 0, sizeof *ip);
#ifndef KHIL_VARIANTS
    if (flags & KHIL_LOAD_VARIANT_MASK) {
        khil_fmt(err, err_len, "arithmetic variants need a build with -DKHIL_VARIANTS");
        return KHIL_ERR_ARG;
    }
#endif
    if (model_len < 8) {
        khil_fmt(err, err_len, "not a TFLite flatbuffer (%z bytes)", model_len);
        return KHIL_ERR_PARSE;
    }
    if (memcmp(model + 4, "TFL3", 4) != 0) {
        char id[5];
        for (int i = 0; i < 4; i++) {
            char ch = (char)model[4 + i];
            id[i] = (ch >= 32 && ch < 127) ? ch : '?';
        }
        id[4] = 0;
        khil_fmt(err, err_len, "not a TFLite flatbuffer (identifier '%s')", id);
        return KHIL_ERR_PARSE;
    }
    ip->model = model;
    ip->model_len = model_len;
    ip->arena = arena;
    ip->arena_len = arena_len;

    loader ld;
    memset(&ld, 0, sizeof ld);
    ld.ip = ip;
    ld.fb.buf = model;
    ld.fb.len = model_len;
    ld.err = err;
    ld.err_len = err_len;
    ld.variant = flags & KHIL_LOAD_VARIANT_MASK;
    uintptr_t a = ((uintptr_t)arena + ACTIVATION_ALIGN - 1) & ~(uintptr_t)(ACTIVATION_ALIGN - 1);
    size_t skip = (size_t)(a - (uintptr_t)arena);
    ld.base = (uint8_t *)a;
    ld.usable = arena_len > skip ? (arena_len - skip) & ~(size_t)(PERSIST_ALIGN - 1) : 0;

    khil_fb *fb = &ld.fb;
    khil_fb_table root = khil_fb_root(fb);
    khil_fb_vector opcodes = khil_fb_vec(fb, &root, MODEL_OPERATOR_CODES, 4);
    khil_fb_vector subgraphs = khil_fb_vec(fb, &root, MODEL_SUBGRAPHS, 4);
    ld.buffers = khil_fb_vec(fb, &root, MODEL_BUFFERS, 4);
    if (fb->bad) {
        return fail_corrupt(&ld, "the model table");
    }
    if (subgraphs.count < 1) {
        khil_fmt(err, err_len, "TFLite model has no subgraph");
        return KHIL_ERR_PARSE;
    }
    khil_fb_table sg = khil_fb_vec_table(fb, subgraphs, 0);
    ld.tensors = khil_fb_vec(fb, &sg, SUBGRAPH_TENSORS, 4);
    khil_fb_vector inputs = khil_fb_vec(fb, &sg, SUBGRAPH_INPUTS, 4);
    khil_fb_vector outputs = khil_fb_vec(fb, &sg, SUBGRAPH_OUTPUTS, 4);
    khil_fb_vector operators = khil_fb_vec(fb, &sg, SUBGRAPH_OPERATORS, 4);
    if (fb->bad) {
        return fail_corrupt(&ld, "subgraph 0");
    }
    if (ld.tensors.count > 0x7fff || operators.count > 0x7fff) {
        khil_fmt(err, err_len, "model has %u tensors and %u operators, too many",
                 (unsigned)ld.tensors.count, (unsigned)operators.count);
        return KHIL_ERR_PARSE;
    }
    ip->num_tensors = (int32_t)ld.tensors.count;
    ip->num_ops = (int32_t)operators.count;

    /* Planner entries (one per tensor, one per op's scratch) at the bottom of the arena. */
    ld.plan = (khil_plan_entry *)(void *)ld.base;
    ld.scratch_used = sizeof(khil_plan_entry) * (ld.tensors.count + operators.count);
    if (ld.scratch_used > ld.usable) {
        return fail_arena_metadata(&ld);
    }
    memset(ld.plan, 0, ld.scratch_used);
    ip->ops = persist_alloc(&ld, sizeof(khil_op) * (operators.count ? operators.count : 1));
    if (ip->ops == NULL) {
        return fail_arena_metadata(&ld);
    }
    for (uint32_t i = 0; i < ld.tensors.count; i++) {
        tensor_view v;
        CHECK(view_tensor(&ld, (int32_t)i, &v));
        khil_plan_entry *e = &ld.plan[i];
        e->bytes = v.bytes;
        e->is_const = v.data != NULL;
        e->first = -2; /* not written yet (see parse_op) */
        e->last = -1;
        e->alias_of = -1;
        e->record = -1;
    }
    CHECK(read_io(&ld, inputs, ip->inputs, &ip->num_inputs, "inputs"));
    CHECK(read_io(&ld, outputs, ip->outputs, &ip->num_outputs, "outputs"));
    for (int i = 0; i < ip->num_inputs; i++) {
        if (ld.plan[ip->inputs[i]].is_const) {
            khil_fmt(err, err_len, "model input %d is a constant tensor", i);
            return KHIL_ERR_PARSE;
        }
        ld.plan[ip->inputs[i]].first = -1; /* "written" before the first op */
    }
    for (uint32_t i = 0; i < operators.count; i++) {
        khil_fb_table ot = khil_fb_vec_table(fb, operators, i);
        if (fb->bad) {
            return fail_corrupt(&ld, "the operator list");
        }
        CHECK(parse_op(&ld, opcodes, ot, (int32_t)i));
    }
    for (int i = 0; i < ip->num_outputs; i++) {
        const khil_plan_entry *e = &ld.plan[ip->outputs[i]];
        if (!e->is_const && e->first == -2) {
            khil_fmt(err, err_len, "model output %d (tensor %d) is never written", i,
                     (int)ip->outputs[i]);
            return KHIL_ERR_PARSE;
        }
    }
    CHECK(make_records(&ld));
    CHECK(plan(&ld, (flags & KHIL_LOAD_KEEP_INPUTS) != 0));
    use_record_indices(&ld);
    ip->loaded = 1;
    return KHIL_OK;
}

khil_status khil_load(khil_interp *ip, const uint8_t *model, size_t model_len, uint8_t *arena,
                      size_t arena_len, char *err, size_t err_len)
{
    return khil_load_ex(ip, model, model_len, arena, arena_len, 0, err, err_len);
}
/* ---------------------------------------------------------------- messages */

static void put(char *err, size_t err_len, size_t *n, char ch)
{
    if (*n + 1 < err_len) {
        err[*n] = ch;
        ++*n;
    }
}

static void put_unsigned(char *err, size_t err_len, size_t *n, uint64_t v)
{
    char digits[24];
    int k = 0;
    do {
        digits[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (k > 0) {
        put(err, err_len, n, digits[--k]);
    }
}

void khil_fmt(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    size_t n = 0;
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        if (*f != '%' || f[1] == 0) {
            put(err, err_len, &n, *f);
            continue;
        }
        f++;
        if (*f == 's') {
            const char *s = va_arg(ap, const char *);
            while (s != NULL && *s) {
                put(err, err_len, &n, *s++);
            }
        } else if (*f == 'd') {
            int v = va_arg(ap, int);
            if (v < 0) {
                put(err, err_len, &n, '-');
                put_unsigned(err, err_len, &n, (uint64_t)(-(int64_t)v));
            } else {
                put_unsigned(err, err_len, &n, (uint64_t)v);
            }
        } else if (*f == 'u') {
            put_unsigned(err, err_len, &n, va_arg(ap, unsigned));
        } else if (*f == 'z') {
            put_unsigned(err, err_len, &n, va_arg(ap, size_t));
        } else {
            put(err, err_len, &n, *f);
        }
    }
    va_end(ap);
    err[n] = 0;
}
