/* khil_runtime_ops implemented with the interpreter (see khil_interp_runtime.h). */
#include "khil_interp_runtime.h"

#include <string.h>

#include "khil_stats.h"
#include "khil_text.h"

#define ARENA_ALIGN 16u

void khil_interp_runtime_init(khil_interp_runtime *r, const khil_interp_runtime_config *cfg)
{
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
}

static uint8_t *model_buffer(void *ctx, size_t *cap)
{
    khil_interp_runtime *r = ctx;
    r->loaded = 0;
    *cap = r->cfg.region_size;
    return r->cfg.region;
}

static void reset(void *ctx)
{
    khil_interp_runtime *r = ctx;
    r->loaded = 0;
    r->model_len = 0;
    r->inferences = 0;
    r->last_ticks = 0;
}

#ifdef KHIL_NO_INTERP

static int load_model(void *ctx, size_t model_len, const khil_iospec *spec, char *err,
                      size_t err_len)
{
    (void)ctx;
    (void)model_len;
    (void)spec;
    khil_text t;
    khil_text_init(&t, err, err_len);
    khil_text_str(&t, "interpreter not built into this firmware (firmware/interp missing)");
    return -1;
}

static size_t input_bytes(void *ctx) { (void)ctx; return 0; }

static void write_input(void *ctx, size_t offset, const uint8_t *bytes, size_t len)
{
    (void)ctx;
    (void)offset;
    (void)bytes;
    (void)len;
}

static int process(void *ctx, char *err, size_t err_len)
{
    (void)ctx;
    khil_text t;
    khil_text_init(&t, err, err_len);
    khil_text_str(&t, "no model loaded");
    return -1;
}

static int output_segment(void *ctx, unsigned index, const uint8_t **data, size_t *len)
{
    (void)ctx;
    (void)index;
    (void)data;
    (void)len;
    return -1;
}

#else /* the interpreter is built in */

/* TFLite tensor type -> DLPack (code, bits) as used by the io spec. */
static int dlpack_of(uint8_t tflite_type, khil_dtype *out)
{
    switch (tflite_type) {
    case KHIL_TYPE_FLOAT32: *out = (khil_dtype){KHIL_DL_FLOAT, 32}; return 0;
    case KHIL_TYPE_FLOAT16: *out = (khil_dtype){KHIL_DL_FLOAT, 16}; return 0;
    case KHIL_TYPE_INT32: *out = (khil_dtype){KHIL_DL_INT, 32}; return 0;
    case KHIL_TYPE_UINT8: *out = (khil_dtype){KHIL_DL_UINT, 8}; return 0;
    case KHIL_TYPE_INT64: *out = (khil_dtype){KHIL_DL_INT, 64}; return 0;
    case KHIL_TYPE_INT16: *out = (khil_dtype){KHIL_DL_INT, 16}; return 0;
    case KHIL_TYPE_INT8: *out = (khil_dtype){KHIL_DL_INT, 8}; return 0;
    default: return -1;
    }
}

static void describe_model_tensor(khil_text *t, const khil_tensor_info *info)
{
    khil_dtype d;
    khil_iospec_tensor as_spec = {0};
    as_spec.ndim = info->ndim > KHIL_IOSPEC_MAX_DIMS ? KHIL_IOSPEC_MAX_DIMS : info->ndim;
    for (uint32_t i = 0; i < as_spec.ndim; i++) {
        as_spec.shape[i] = (uint32_t)info->dims[i];
    }
    as_spec.dtype = dlpack_of(info->type, &d) == 0 ? d : (khil_dtype){255, 0};
    char buf[48];
    khil_iospec_describe(&as_spec, buf, sizeof(buf));
    khil_text_str(t, buf);
}

/* The io spec the host sent must describe the model it sent: a mismatch would otherwise
 * show up as garbage outputs. Sizes of a tensor the spec leaves all-zero are not compared
 * (Kenning's host packs shapes of multi-tensor models back to back, leaving later rows 0). */
static int check_tensors(const char *which, unsigned count, const khil_iospec_tensor *spec,
                         const khil_interp *ip, int inputs, char *err, size_t err_len)
{
    khil_text t;
    for (unsigned i = 0; i < count; i++) {
        khil_tensor_info info;
        if ((inputs ? khil_input(ip, (int)i, &info) : khil_output(ip, (int)i, &info)) != KHIL_OK) {
            return -1;
        }
        khil_dtype d;
        int type_ok = dlpack_of(info.type, &d) == 0 && d.code == spec[i].dtype.code &&
                      d.bits == spec[i].dtype.bits;
        uint64_t spec_bytes = khil_iospec_tensor_bytes(&spec[i]);
        int size_ok = spec_bytes == 0 || spec_bytes == info.bytes;
        if (!type_ok || !size_ok) {
            char buf[48];
            khil_iospec_describe(&spec[i], buf, sizeof(buf));
            khil_text_init(&t, err, err_len);
            khil_text_str(&t, "IO_SPEC ");
            khil_text_u64(khil_text_str(&t, which), i);
            khil_text_str(khil_text_str(&t, " is "), buf);
            khil_text_u64(khil_text_str(&t, " ("), spec_bytes);
            khil_text_str(&t, " bytes) but the model's is ");
            describe_model_tensor(&t, &info);
            khil_text_u64(khil_text_str(&t, " ("), info.bytes);
            khil_text_str(&t, " bytes)");
            return -1;
        }
    }
    return 0;
}

static int check_iospec(const khil_iospec *spec, const khil_interp *ip, char *err,
                        size_t err_len)
{
    khil_text t;
    unsigned nin = (unsigned)khil_num_inputs(ip), nout = (unsigned)khil_num_outputs(ip);
    if (spec->num_inputs != nin || spec->num_outputs != nout) {
        khil_text_init(&t, err, err_len);
        khil_text_u64(khil_text_str(&t, "IO_SPEC declares "), spec->num_inputs);
        khil_text_u64(khil_text_str(&t, " inputs and "), spec->num_outputs);
        khil_text_u64(khil_text_str(&t, " outputs, the model has "), nin);
        khil_text_u64(khil_text_str(&t, " and "), nout);
        return -1;
    }
    if (check_tensors("input ", nin, spec->inputs, ip, 1, err, err_len) ||
        check_tensors("output ", nout, spec->outputs, ip, 0, err, err_len)) {
        return -1;
    }
    return 0;
}

static int load_model(void *ctx, size_t model_len, const khil_iospec *spec, char *err,
                      size_t err_len)
{
    khil_interp_runtime *r = ctx;
    r->loaded = 0;
    r->inferences = 0;
    r->last_ticks = 0;
    size_t arena_off = (model_len + ARENA_ALIGN - 1u) & ~(size_t)(ARENA_ALIGN - 1u);
    if (arena_off >= r->cfg.region_size) {
        khil_text t;
        khil_text_init(&t, err, err_len);
        khil_text_u64(khil_text_str(&t, "model of "), model_len);
        khil_text_u64(khil_text_str(&t, " bytes leaves no tensor arena in the "),
                      r->cfg.region_size);
        khil_text_str(&t, "-byte model + arena memory");
        return -1;
    }
    r->model_len = model_len;
    r->arena_len = r->cfg.region_size - arena_off;
    if (khil_load(&r->interp, r->cfg.region, model_len, r->cfg.region + arena_off, r->arena_len,
                  err, err_len) != KHIL_OK) {
        return -1;
    }
    if (spec && check_iospec(spec, &r->interp, err, err_len)) {
        return -1;
    }
    r->loaded = 1;
    return 0;
}

static size_t input_bytes(void *ctx)
{
    khil_interp_runtime *r = ctx;
    size_t total = 0;
    khil_tensor_info info;
    for (int i = 0; i < khil_num_inputs(&r->interp); i++) {
        if (khil_input(&r->interp, i, &info) == KHIL_OK) {
            total += info.bytes;
        }
    }
    return total;
}

static void write_input(void *ctx, size_t offset, const uint8_t *bytes, size_t len)
{
    khil_interp_runtime *r = ctx;
    khil_tensor_info info;
    size_t base = 0;
    for (int i = 0; len > 0 && i < khil_num_inputs(&r->interp); i++) {
        if (khil_input(&r->interp, i, &info) != KHIL_OK) {
            return;
        }
        if (offset < base + info.bytes) {
            size_t at = offset - base;
            size_t n = info.bytes - at < len ? info.bytes - at : len;
            memcpy((uint8_t *)info.data + at, bytes, n);
            bytes += n;
            offset += n;
            len -= n;
        }
        base += info.bytes;
    }
}

static int process(void *ctx, char *err, size_t err_len)
{
    khil_interp_runtime *r = ctx;
    if (!r->loaded) {
        khil_text t;
        khil_text_init(&t, err, err_len);
        khil_text_str(&t, "no model loaded");
        return -1;
    }
    uint64_t start = r->cfg.clock();
    khil_status st = khil_invoke(&r->interp, err, err_len);
    uint64_t end = r->cfg.clock();
    if (st != KHIL_OK) {
        return -1;
    }
    r->last_ticks = end - start;
    r->inferences++;
    return 0;
}

static int output_segment(void *ctx, unsigned index, const uint8_t **data, size_t *len)
{
    khil_interp_runtime *r = ctx;
    khil_tensor_info info;
    if (!r->loaded || index >= (unsigned)khil_num_outputs(&r->interp) ||
        khil_output(&r->interp, (int)index, &info) != KHIL_OK) {
        return -1;
    }
    *data = info.data;
    *len = info.bytes;
    return 0;
}

#endif /* KHIL_NO_INTERP */

static uint64_t ticks_to_ns(const khil_interp_runtime *r, uint64_t ticks)
{
    /* Whole seconds and the remainder separately: no overflow for any realistic count. */
    uint64_t hz = r->cfg.clock_hz ? r->cfg.clock_hz : 1u;
    return ticks / hz * 1000000000u + ticks % hz * 1000000000u / hz;
}

static size_t stats(void *ctx, uint8_t *out, size_t cap)
{
    khil_interp_runtime *r = ctx;
    size_t len = 0;
    if (!r->loaded) {
        return 0;
    }
    /* The STATS names are kenning_hil.core.measurements' constants: PEAK_ALLOCATED,
     * ARENA_SIZE, MODEL_SIZE, INFERENCE_COUNT, TARGET_INSTRUCTIONS, TARGET_CYCLES, TARGET_STEP. */
#ifndef KHIL_NO_INTERP
    khil_stats_append(out, cap, &len, "peak_allocated", KHIL_STAT_ALLOCATION,
                      khil_arena_peak(&r->interp));
#endif
    khil_stats_append(out, cap, &len, "arena_size", KHIL_STAT_ALLOCATION, r->arena_len);
    khil_stats_append(out, cap, &len, "model_size", KHIL_STAT_ALLOCATION, r->model_len);
    khil_stats_append(out, cap, &len, "inference_count", KHIL_STAT_DEFAULT, r->inferences);
    if (r->inferences == 0) {
        return len;
    }
    uint64_t ns = ticks_to_ns(r, r->last_ticks);
    switch (r->cfg.unit) {
    case KHIL_TIMING_INSTRUCTIONS:
        /* Virtual nanoseconds under -icount shift=0 are instructions, not time. */
        khil_stats_append(out, cap, &len, "target_inference_instructions", KHIL_STAT_DEFAULT, ns);
        break;
    case KHIL_TIMING_CYCLES:
        khil_stats_append(out, cap, &len, "target_inference_cycles", KHIL_STAT_DEFAULT,
                          r->last_ticks);
        khil_stats_append(out, cap, &len, "target_inference_step", KHIL_STAT_TIME, ns);
        break;
    case KHIL_TIMING_NANOSECONDS:
        khil_stats_append(out, cap, &len, "target_inference_step", KHIL_STAT_TIME, ns);
        break;
    }
    return len;
}

const khil_runtime_ops khil_interp_runtime_ops = {
    .model_buffer = model_buffer,
    .load_model = load_model,
    .input_bytes = input_bytes,
    .write_input = write_input,
    .process = process,
    .output_segment = output_segment,
    .stats = stats,
    .reset = reset,
};
