/* kenning-hil int8 TFLite interpreter: public API.
 *
 * Runs int8 TFLite flatbuffer models (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
 * AVERAGE_POOL_2D, ADD, RESHAPE, SOFTMAX) bit-exactly like LiteRT's reference kernels.
 * No malloc: the caller owns the khil_interp struct and the arena; the model bytes stay in
 * place (weights are read from the flatbuffer). Integer-only at inference time; float/double
 * only while loading, to derive fixed-point multipliers the way LiteRT does.
 * No board code: the same sources build for the MCU and as a host shared library.
 */
#ifndef KHIL_INTERP_H
#define KHIL_INTERP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    KHIL_OK = 0,
    KHIL_ERR_PARSE,
    KHIL_ERR_UNSUPPORTED_OP,
    KHIL_ERR_UNSUPPORTED_TYPE,
    KHIL_ERR_ARENA,
    KHIL_ERR_STATE,
    KHIL_ERR_ARG
} khil_status;

/* TFLite TensorType codes used in khil_tensor_info.type. */
enum {
    KHIL_TYPE_FLOAT32 = 0,
    KHIL_TYPE_FLOAT16 = 1,
    KHIL_TYPE_INT32 = 2,
    KHIL_TYPE_UINT8 = 3,
    KHIL_TYPE_INT64 = 4,
    KHIL_TYPE_INT16 = 7,
    KHIL_TYPE_INT8 = 9
};

#define KHIL_MAX_DIMS 6
#define KHIL_MAX_IO 16

typedef struct {
    uint8_t type; /* TFLite TensorType: 0 FLOAT32, 2 INT32, 9 INT8, ... */
    uint8_t ndim;
    int32_t dims[KHIL_MAX_DIMS];
    size_t bytes;
    void *data; /* inputs: write here before khil_invoke; outputs: read after it */
    float scale;
    int32_t zero_point;
} khil_tensor_info;

struct khil_tensor; /* internal, lives in the arena */
struct khil_op;     /* internal, lives in the arena */

typedef struct khil_interp {
    const uint8_t *model;
    size_t model_len;
    uint8_t *arena;
    size_t arena_len;
    size_t arena_peak;       /* bytes used: tensor data + op parameters + bookkeeping */
    size_t activation_bytes; /* of which: planned activation tensors */
    size_t persistent_bytes; /* of which: tensor/op records and per-channel parameters */
    struct khil_tensor *tensors;
    int32_t num_tensors;
    struct khil_op *ops;
    int32_t num_ops;
    int32_t inputs[KHIL_MAX_IO];
    int32_t outputs[KHIL_MAX_IO];
    int num_inputs;
    int num_outputs;
    int loaded; /* 1 after a successful khil_load */
} khil_interp;

/* Parses and plans the model; every flatbuffer read is bounds-checked against model_len.
 * On failure returns the status and writes a one-line reason into err (if err_len > 0). */
khil_status khil_load(khil_interp *ip, const uint8_t *model, size_t model_len, uint8_t *arena,
                      size_t arena_len, char *err, size_t err_len);

/* khil_load flags. By default input tensors are consumed by khil_invoke (their memory is reused
 * once read, as in TFLite Micro): write the inputs before every invoke. KEEP_INPUTS keeps them
 * intact for the whole invoke, at the cost of arena. The low byte selects arithmetic variants
 * (see khil_quant.h), honoured only in builds with -DKHIL_VARIANTS (host investigation). */
#define KHIL_LOAD_KEEP_INPUTS (1u << 8)
#define KHIL_LOAD_VARIANT_MASK 0xffu
khil_status khil_load_ex(khil_interp *ip, const uint8_t *model, size_t model_len, uint8_t *arena,
                         size_t arena_len, uint32_t flags, char *err, size_t err_len);
/* Runs one inference on the current input tensors. */
khil_status khil_invoke(khil_interp *ip, char *err, size_t err_len);
int khil_num_inputs(const khil_interp *ip);
int khil_num_outputs(const khil_interp *ip);
khil_status khil_input(const khil_interp *ip, int i, khil_tensor_info *out);
khil_status khil_output(const khil_interp *ip, int i, khil_tensor_info *out);
size_t khil_arena_peak(const khil_interp *ip); /* bytes of arena used (tensors + scratch) */
/* sizeof(khil_interp), for bindings (ctypes) that allocate the struct themselves. */
size_t khil_interp_struct_size(void);

#ifdef __cplusplus
}
#endif

#endif /* KHIL_INTERP_H */
