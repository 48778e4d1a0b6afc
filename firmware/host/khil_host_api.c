/* Host-only entry points of libkhil_proto.so: the firmware's protocol and session code (the
 * same sources the boards run, with the interpreter when it is built in) driven from Python
 * through ctypes, byte stream in, byte stream out, in microseconds instead of a QEMU boot. */
#define _POSIX_C_SOURCE 200112L

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/khil_interp_runtime.h"
#include "khil_frame.h"
#include "khil_session.h"

typedef struct {
    khil_session session;
    khil_interp_runtime runtime;
    uint8_t *region;
    uint8_t *out; /* answers written by the session, not yet taken */
    size_t out_len;
    size_t out_cap;
} khil_host_target;

static uint64_t host_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void collect(void *ctx, const uint8_t *bytes, size_t len)
{
    khil_host_target *t = ctx;
    if (t->out_len + len > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        while (cap < t->out_len + len) {
            cap *= 2;
        }
        uint8_t *grown = realloc(t->out, cap);
        if (!grown) {
            return; /* out of host memory: the answer is lost and the test will say so */
        }
        t->out = grown;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, bytes, len);
    t->out_len += len;
}

khil_host_target *khil_host_target_new(size_t region_size)
{
    khil_host_target *t = calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    size_t rounded = (region_size + 15u) & ~(size_t)15u;
    t->region = aligned_alloc(16, rounded ? rounded : 16u);
    if (!t->region) {
        free(t);
        return NULL;
    }
    khil_interp_runtime_config cfg = {
        .region = t->region,
        .region_size = region_size,
        .clock = host_clock_ns,
        .clock_hz = 1000000000u,
        .unit = KHIL_TIMING_NANOSECONDS,
    };
    khil_interp_runtime_init(&t->runtime, &cfg);
    khil_session_init(&t->session, &khil_interp_runtime_ops, &t->runtime, collect, t, 1);
    return t;
}

void khil_host_target_free(khil_host_target *t)
{
    if (t) {
        free(t->region);
        free(t->out);
        free(t);
    }
}

void khil_host_target_feed(khil_host_target *t, const uint8_t *bytes, size_t len)
{
    khil_session_feed(&t->session, bytes, len);
}

void khil_host_target_line_idle(khil_host_target *t) { khil_session_line_idle(&t->session); }

/* Moves up to cap answer bytes into out; returns how many. */
size_t khil_host_target_take(khil_host_target *t, uint8_t *out, size_t cap)
{
    size_t n = t->out_len < cap ? t->out_len : cap;
    memcpy(out, t->out, n);
    memmove(t->out, t->out + n, t->out_len - n);
    t->out_len -= n;
    return n;
}

size_t khil_host_target_pending_output(const khil_host_target *t) { return t->out_len; }

/* Decoder counters: 0 frames, 1 skipped bytes, 2 bad checksums, 3 truncated, 4 oversized. */
uint32_t khil_host_target_counter(const khil_host_target *t, int which)
{
    const khil_decoder *d = &t->session.decoder;
    switch (which) {
    case 0: return d->frames;
    case 1: return d->skipped_bytes;
    case 2: return d->bad_checksums;
    case 3: return d->truncated;
    case 4: return d->oversized;
    default: return 0;
    }
}

/* ---- the bare decoder ---------------------------------------------------------------------- */

khil_decoder *khil_host_decoder_new(uint32_t max_payload, int verify_checksum)
{
    khil_decoder *d = malloc(sizeof(*d));
    if (d) {
        khil_decoder_init(d, max_payload, verify_checksum);
    }
    return d;
}

void khil_host_decoder_free(khil_decoder *d) { free(d); }

/* khil_decoder_next with its result spread over plain out-parameters (ctypes-friendly);
 * payload must hold KHIL_UART_MAX_PAYLOAD bytes. Returns the khil_rx_event. */
int khil_host_decoder_next(khil_decoder *d, uint32_t fields[6], uint8_t *payload)
{
    khil_rx_frame f;
    khil_rx_event ev = khil_decoder_next(d, &f);
    if (ev == KHIL_RX_NONE) {
        return ev;
    }
    fields[0] = f.header.type;
    fields[1] = f.header.flow;
    fields[2] = f.header.flags;
    fields[3] = f.header.payload_size;
    fields[4] = f.header.checksum;
    fields[5] = f.payload_len;
    if (f.payload_len) {
        memcpy(payload, f.payload, f.payload_len);
    }
    return ev;
}
