/* The IO spec as it travels over UART: a packed little-endian 356-byte struct, read the way
 * Kenning's Zephyr runtime reads it (PROTOCOL.md "IO spec over UART"). */
#ifndef KHIL_IOSPEC_H
#define KHIL_IOSPEC_H

#include <stddef.h>
#include <stdint.h>

#define KHIL_IOSPEC_SIZE 356u
#define KHIL_IOSPEC_MAX_INPUTS 2u
#define KHIL_IOSPEC_MAX_OUTPUTS 12u
#define KHIL_IOSPEC_MAX_DIMS 4u
#define KHIL_IOSPEC_NAME_LEN 20u

/* DLPack type codes */
enum { KHIL_DL_INT = 0, KHIL_DL_UINT = 1, KHIL_DL_FLOAT = 2, KHIL_DL_BOOL = 6 };

typedef struct {
    uint8_t code; /* KHIL_DL_* */
    uint8_t bits;
} khil_dtype;

typedef struct {
    uint32_t ndim;
    uint32_t shape[KHIL_IOSPEC_MAX_DIMS];
    khil_dtype dtype;
} khil_iospec_tensor;

typedef struct {
    uint32_t num_inputs;
    khil_iospec_tensor inputs[KHIL_IOSPEC_MAX_INPUTS];
    uint32_t num_outputs;
    khil_iospec_tensor outputs[KHIL_IOSPEC_MAX_OUTPUTS];
    char entry_func[KHIL_IOSPEC_NAME_LEN + 1];
    char model_name[KHIL_IOSPEC_NAME_LEN + 1];
} khil_iospec;

/* Parses and validates the packed struct; on error returns -1 with a one-line reason. */
int khil_iospec_parse(const uint8_t *buf, size_t len, khil_iospec *out, char *err,
                      size_t err_len);
/* Bytes of one tensor (product of its dims times bits / 8). */
uint64_t khil_iospec_tensor_bytes(const khil_iospec_tensor *t);
/* Writes a readable form such as "int8[1,49,10,1]" (for error messages). */
void khil_iospec_describe(const khil_iospec_tensor *t, char *buf, size_t cap);

#endif /* KHIL_IOSPEC_H */
