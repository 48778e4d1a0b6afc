/* The target side of an inference session over UART (PROTOCOL.md): turns the received byte
 * stream into requests (chunk reassembly, order checks) and sends Zephyr-style answers
 * (TRANSMISSION of the request's type, SUCCESS or FAIL, IS_ZEPHYR, no status payload).
 *
 * Behaviour the host can rely on:
 * - A connect PING (SUCCESS flag) is accepted at any time and ends the old session; a PING
 *   with SUCCESS and FAIL restarts it; a disconnect PING (FAIL flag) ends it; a PING with
 *   neither flag is a liveness check. All four are answered with PING SUCCESS.
 * - Every request is answered exactly once, as soon as its outcome is known: a request that
 *   fails early (out of order, too large) is answered FAIL at that point and its remaining
 *   chunks are dropped silently.
 * - A FAIL answer carries a one-line UTF-8 reason as payload (e.g. the MODEL answer names an
 *   unsupported operator or says the model does not fit), and the same reason goes out just
 *   before it as a LOGS transmission ("<TYPE> refused: <reason>") for hosts that only read
 *   reasons from logs.
 * - Bytes that cannot start a frame are skipped. A request frame damaged on the line (bad
 *   checksum; truncated: the line stayed quiet mid-frame for two gaps; or bytes skipped
 *   between two chunks of one request) is not answered: the target sends
 *   a LOGS line with the reason, then REQUEST_RETRANSMIT of that type (count 0xFFFFFFFF =
 *   the whole transmission), and drops the rest of that transmission; the host sends the
 *   request again from its FIRST chunk. A host that does not resend (Kenning's UART host
 *   logs REQUEST_RETRANSMIT as unexpected and waits for an answer, without a timeout) gets
 *   the FAIL answer with the reason once the line has been quiet for
 *   KHIL_SESSION_RESEND_WAIT gaps (khil_session_line_idle calls) without a new request.
 *   While it waits, only the resent FIRST chunk or a PING is taken: other headers come from
 *   the damaged transmission's payload. An oversized first frame is answered FAIL.
 * - A REQUEST_RETRANSMIT for the type of the last answer sends that answer again.
 *
 * No board code: builds for the MCU and as a host library.
 */
#ifndef KHIL_SESSION_H
#define KHIL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "khil_frame.h"
#include "khil_iospec.h"
#include "khil_stats.h"

/* What runs the models (khil_interp_runtime.c wraps the interpreter). */
typedef struct {
    /* Buffer MODEL bytes are reassembled into (the model runs in place from it). */
    uint8_t *(*model_buffer)(void *ctx, size_t *cap);
    /* Loads the model_len bytes of the model buffer; spec is NULL when no IO_SPEC came. */
    int (*load_model)(void *ctx, size_t model_len, const khil_iospec *spec, char *err,
                      size_t err_len);
    /* Total bytes of all input tensors (DATA carries them concatenated, in order). */
    size_t (*input_bytes)(void *ctx);
    /* Writes len DATA bytes at offset (offset + len <= input_bytes). */
    void (*write_input)(void *ctx, size_t offset, const uint8_t *bytes, size_t len);
    int (*process)(void *ctx, char *err, size_t err_len);
    /* Output tensor `index` as raw bytes; returns -1 past the last output. */
    int (*output_segment)(void *ctx, unsigned index, const uint8_t **data, size_t *len);
    /* Appends STATS records (khil_stats_append) into out; returns the bytes written. */
    size_t (*stats)(void *ctx, uint8_t *out, size_t cap);
    /* The session ended: forget the model and the statistics. */
    void (*reset)(void *ctx);
} khil_runtime_ops;

typedef void (*khil_write_fn)(void *ctx, const uint8_t *bytes, size_t len);

#define KHIL_SESSION_ERR_LEN 160u
#define KHIL_SESSION_MAX_STATS 10u
/* Quiet-line gaps to wait for a resend after REQUEST_RETRANSMIT before answering FAIL (with
 * the board's 1 s RX gap: 5 s; our host resends at once, even when starved of CPU). */
#define KHIL_SESSION_RESEND_WAIT 5u

typedef struct {
    const khil_runtime_ops *rt;
    void *rt_ctx;
    khil_write_fn write;
    void *write_ctx;
    khil_decoder decoder;

    uint8_t connected;
    uint8_t have_iospec;
    uint8_t model_loaded;
    uint8_t data_ready;
    uint8_t processed;
    khil_iospec iospec;

    /* The request being reassembled. */
    uint8_t rx_active;
    uint8_t rx_type;
    uint8_t rx_answered; /* answered FAIL or asked for again: drop its remaining chunks */
    uint16_t rx_flags;
    uint32_t rx_len;
    uint8_t *model_buf;
    size_t model_cap;
    uint8_t small[KHIL_SESSION_MAX_STATS * KHIL_STATS_RECORD_SIZE]; /* IO_SPEC, STATS */

    int busy_type; /* request whose handler is running, or -1 (for fault reports) */
    /* The last answer, for REQUEST_RETRANSMIT (OUTPUT and STATS are regenerated). */
    int last_type;
    uint16_t last_status;
    uint8_t last_payload_len;
    uint8_t last_payload[KHIL_SESSION_ERR_LEN];
    char err[KHIL_SESSION_ERR_LEN];
    uint8_t tx[KHIL_UART_MAX_FRAME];

    uint32_t answers;
    uint32_t fail_answers;
    uint32_t dropped_frames; /* not requests, or chunks of an answered/abandoned request */
    uint32_t retransmit_requests; /* damaged request frames asked for again */

    /* The request asked for again and not yet resent (-1: none), why, and the quiet gaps
     * since: a host that never resends gets a FAIL instead of waiting forever. */
    int resend_type;
    uint8_t resend_gaps;
    char resend_reason[KHIL_SESSION_ERR_LEN];
} khil_session;

void khil_session_init(khil_session *s, const khil_runtime_ops *rt, void *rt_ctx,
                       khil_write_fn write, void *write_ctx, int verify_checksum);
/* Handles received bytes (any split); answers are written through `write`. */
void khil_session_feed(khil_session *s, const uint8_t *bytes, size_t len);
/* The line has been quiet for a while: a partial frame will not complete, and a resend
 * asked for may not come. */
void khil_session_line_idle(khil_session *s);
/* 1 if part of a frame is buffered or a resend is awaited (the caller should then call
 * line_idle after each quiet gap). */
int khil_session_rx_pending(const khil_session *s);
/* Type of the request being executed, or -1 (used by the fault handler). */
int khil_session_busy_request(const khil_session *s);
const char *khil_msg_type_name(unsigned type);

#endif /* KHIL_SESSION_H */
