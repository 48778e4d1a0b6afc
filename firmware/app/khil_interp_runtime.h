/* The session's runtime (khil_runtime_ops) on top of the int8 TFLite interpreter: the model
 * is reassembled at the start of one memory region and the tensor arena is the rest of it;
 * inference is timed with the clock the board (or host) provides. No board code. */
#ifndef KHIL_INTERP_RUNTIME_H
#define KHIL_INTERP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "khil_interp.h"
#include "khil_session.h"

/* What the clock's ticks count; decides the names of the STATS timing records. */
typedef enum {
    KHIL_TIMING_INSTRUCTIONS = 0, /* QEMU -icount shift=0: ticks * 1e9 / hz = instructions */
    KHIL_TIMING_CYCLES = 1,       /* real silicon: CPU cycles */
    KHIL_TIMING_NANOSECONDS = 2   /* host build: wall-clock ns (hz = 1e9) */
} khil_timing_unit;

typedef struct {
    uint8_t *region; /* model + arena; 16-byte aligned */
    size_t region_size;
    uint64_t (*clock)(void);
    uint32_t clock_hz;
    khil_timing_unit unit;
} khil_interp_runtime_config;

typedef struct {
    khil_interp_runtime_config cfg;
    khil_interp interp;
    size_t model_len;
    size_t arena_len;
    int loaded;
    uint32_t inferences;
    uint64_t last_ticks;
} khil_interp_runtime;

extern const khil_runtime_ops khil_interp_runtime_ops;

void khil_interp_runtime_init(khil_interp_runtime *r, const khil_interp_runtime_config *cfg);

#endif /* KHIL_INTERP_RUNTIME_H */
