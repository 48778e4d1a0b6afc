#include "khil_iospec.h"

#include <string.h>

#include "khil_text.h"

/* Field offsets in the packed struct. */
#define OFF_NUM_INPUT 0u
#define OFF_NUM_INPUT_DIM 4u
#define OFF_INPUT_SHAPE 12u
#define OFF_INPUT_DTYPE 44u
#define OFF_NUM_OUTPUT 48u
#define OFF_NUM_OUTPUT_DIM 52u
#define OFF_OUTPUT_SHAPE 100u
#define OFF_OUTPUT_DTYPE 292u
#define OFF_ENTRY_FUNC 316u
#define OFF_MODEL_NAME 336u

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static const char *dtype_name(khil_dtype d)
{
    switch (d.code) {
    case KHIL_DL_INT: return "int";
    case KHIL_DL_UINT: return "uint";
    case KHIL_DL_FLOAT: return "float";
    case KHIL_DL_BOOL: return "bool";
    default: return "?";
    }
}

void khil_iospec_describe(const khil_iospec_tensor *t, char *buf, size_t cap)
{
    khil_text x;
    khil_text_init(&x, buf, cap);
    khil_text_u64(khil_text_str(&x, dtype_name(t->dtype)), t->dtype.bits);
    khil_text_str(&x, "[");
    for (uint32_t i = 0; i < t->ndim && i < KHIL_IOSPEC_MAX_DIMS; i++) {
        if (i) {
            khil_text_str(&x, ",");
        }
        khil_text_u64(&x, t->shape[i]);
    }
    khil_text_str(&x, "]");
}

uint64_t khil_iospec_tensor_bytes(const khil_iospec_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->ndim && i < KHIL_IOSPEC_MAX_DIMS; i++) {
        n *= t->shape[i];
    }
    return n * (t->dtype.bits / 8u);
}

static int fail(char *err, size_t err_len, const char *what, const char *which, uint32_t index,
                uint32_t value, uint32_t limit)
{
    khil_text t;
    khil_text_init(&t, err, err_len);
    khil_text_str(&t, "IO_SPEC: ");
    if (which) {
        khil_text_u64(khil_text_str(khil_text_str(&t, which), " "), index);
        khil_text_str(&t, " ");
    }
    khil_text_u64(khil_text_str(khil_text_str(&t, what), " "), value);
    if (limit) {
        khil_text_u64(khil_text_str(&t, " (at most "), limit);
        khil_text_str(&t, ")");
    }
    return -1;
}

static int parse_tensor(const uint8_t *buf, uint32_t dim_off, uint32_t shape_off,
                        uint32_t dtype_off, uint32_t i, const char *which,
                        khil_iospec_tensor *t, char *err, size_t err_len)
{
    t->ndim = rd32(buf + dim_off + 4u * i);
    if (t->ndim > KHIL_IOSPEC_MAX_DIMS) {
        return fail(err, err_len, "has dimension count", which, i, t->ndim,
                    KHIL_IOSPEC_MAX_DIMS);
    }
    for (uint32_t d = 0; d < KHIL_IOSPEC_MAX_DIMS; d++) {
        t->shape[d] = rd32(buf + shape_off + 16u * i + 4u * d);
    }
    t->dtype.code = buf[dtype_off + 2u * i];
    t->dtype.bits = buf[dtype_off + 2u * i + 1u];
    int code_ok = t->dtype.code == KHIL_DL_INT || t->dtype.code == KHIL_DL_UINT ||
                  t->dtype.code == KHIL_DL_FLOAT || t->dtype.code == KHIL_DL_BOOL;
    int bits_ok = t->dtype.bits == 8 || t->dtype.bits == 16 || t->dtype.bits == 32 ||
                  t->dtype.bits == 64;
    if (!code_ok) {
        return fail(err, err_len, "has unknown DLPack type code", which, i, t->dtype.code, 0);
    }
    if (!bits_ok) {
        return fail(err, err_len, "has unsupported bit width", which, i, t->dtype.bits, 0);
    }
    return 0;
}

static void copy_name(char *dst, const uint8_t *src)
{
    memcpy(dst, src, KHIL_IOSPEC_NAME_LEN);
    dst[KHIL_IOSPEC_NAME_LEN] = '\0';
}

int khil_iospec_parse(const uint8_t *buf, size_t len, khil_iospec *out, char *err,
                      size_t err_len)
{
    memset(out, 0, sizeof(*out));
    if (len != KHIL_IOSPEC_SIZE) {
        khil_text t;
        khil_text_init(&t, err, err_len);
        khil_text_u64(khil_text_str(&t, "IO_SPEC over UART must be the packed 356-byte struct, got "),
                      len);
        khil_text_str(&t, " bytes");
        return -1;
    }
    out->num_inputs = rd32(buf + OFF_NUM_INPUT);
    out->num_outputs = rd32(buf + OFF_NUM_OUTPUT);
    if (out->num_inputs < 1 || out->num_inputs > KHIL_IOSPEC_MAX_INPUTS) {
        return fail(err, err_len, "number of inputs", NULL, 0, out->num_inputs,
                    KHIL_IOSPEC_MAX_INPUTS);
    }
    if (out->num_outputs < 1 || out->num_outputs > KHIL_IOSPEC_MAX_OUTPUTS) {
        return fail(err, err_len, "number of outputs", NULL, 0, out->num_outputs,
                    KHIL_IOSPEC_MAX_OUTPUTS);
    }
    for (uint32_t i = 0; i < out->num_inputs; i++) {
        if (parse_tensor(buf, OFF_NUM_INPUT_DIM, OFF_INPUT_SHAPE, OFF_INPUT_DTYPE, i, "input",
                         &out->inputs[i], err, err_len)) {
            return -1;
        }
    }
    for (uint32_t i = 0; i < out->num_outputs; i++) {
        if (parse_tensor(buf, OFF_NUM_OUTPUT_DIM, OFF_OUTPUT_SHAPE, OFF_OUTPUT_DTYPE, i,
                         "output", &out->outputs[i], err, err_len)) {
            return -1;
        }
    }
    copy_name(out->entry_func, buf + OFF_ENTRY_FUNC);
    copy_name(out->model_name, buf + OFF_MODEL_NAME);
    return 0;
}
