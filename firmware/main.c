/* kenning-hil reference firmware: the UART session (protocol/) driving the int8 TFLite
 * interpreter (interp/) on one board (boards/<board>/).
 *
 * Memory: one static region of KHIL_ML_REGION_SIZE bytes (placed by the board's linker
 * script) holds the uploaded model followed by the interpreter's tensor arena.
 * Receive: bytes arrive through the board's interrupt-driven ring buffer; the CPU sleeps
 * while the line is idle. A frame left incomplete for two RX_GAP_MS gaps is expired (asked
 * for again as truncated; one gap is a stalled sender, not a cut) so a cut-off frame never
 * blocks the session, and a request asked for again
 * that the host does not resend is answered FAIL after KHIL_SESSION_RESEND_WAIT quiet gaps
 * (Kenning's UART host ignores REQUEST_RETRANSMIT). The gap is generous because under
 * QEMU an idle guest's clock follows the host's: a host starved of CPU for a few hundred ms
 * must not cut a healthy upload.
 */
#include <string.h>

#include "app/khil_interp_runtime.h"
#include "board.h"
#include "khil_frame.h"
#include "khil_session.h"
#include "khil_stats.h"

#ifndef KHIL_ML_REGION_SIZE
#error "KHIL_ML_REGION_SIZE (model + arena bytes) comes from the board's board.mk"
#endif

#define RX_GAP_MS 1000u
#define RX_BATCH 64u

static uint8_t ml_region[KHIL_ML_REGION_SIZE] __attribute__((section(".ml_region"), aligned(16)));
static khil_interp_runtime runtime;
static khil_session session;
static khil_runtime_ops ops;

static void uart_write(void *ctx, const uint8_t *bytes, size_t len)
{
    (void)ctx;
    board_uart_write(bytes, len);
}

#ifdef KHIL_FAULT_INJECTION
/* Test builds only: a MODEL whose bytes are exactly FAULT_INJECTION_MODEL writes to unmapped
 * memory while the MODEL request runs, so tests can check that the fault is reported. */
#define FAULT_INJECTION_MODEL "khil-fault-injection"
static int load_model_with_fault_injection(void *ctx, size_t model_len, const khil_iospec *spec,
                                           char *err, size_t err_len)
{
    if (model_len == sizeof(FAULT_INJECTION_MODEL) - 1u &&
        memcmp(ml_region, FAULT_INJECTION_MODEL, model_len) == 0) {
        *(volatile uint32_t *)0xF0000000u = 0xDEADu;
    }
    return khil_interp_runtime_ops.load_model(ctx, model_len, spec, err, err_len);
}
#endif

/* STATS also say whether the UART receive ring ever overflowed (0 in a healthy run); the
 * name is kenning_hil.core.measurements.UART_RX_OVERRUNS. */
static size_t stats_with_uart(void *ctx, uint8_t *out, size_t cap)
{
    size_t len = khil_interp_runtime_ops.stats(ctx, out, cap);
    if (len) {
        khil_stats_append(out, cap, &len, "uart_rx_overruns", KHIL_STAT_DEFAULT,
                          board_uart_rx_overruns());
    }
    return len;
}

int main(void)
{
    board_init();
    khil_interp_runtime_config cfg = {
        .region = ml_region,
        .region_size = sizeof(ml_region),
        .clock = board_timer_ticks,
        .clock_hz = board_timer_hz(),
        .unit = board_timing() == BOARD_TIMING_INSTRUCTIONS ? KHIL_TIMING_INSTRUCTIONS
                                                            : KHIL_TIMING_CYCLES,
    };
    khil_interp_runtime_init(&runtime, &cfg);
    ops = khil_interp_runtime_ops;
    ops.stats = stats_with_uart;
#ifdef KHIL_FAULT_INJECTION
    ops.load_model = load_model_with_fault_injection;
#endif
    khil_session_init(&session, &ops, &runtime, uart_write, NULL, 1);

    const uint64_t gap_ticks = (uint64_t)board_timer_hz() / 1000u * RX_GAP_MS;
    uint8_t batch[RX_BATCH];
    for (;;) {
        size_t n = 0;
        if (khil_session_rx_pending(&session)) {
            int byte = board_uart_getc_timeout(gap_ticks);
            if (byte < 0) {
                khil_session_line_idle(&session);
                continue;
            }
            batch[n++] = (uint8_t)byte;
        } else {
            batch[n++] = board_uart_getc();
        }
        int byte;
        while (n < sizeof(batch) && (byte = board_uart_poll()) >= 0) {
            batch[n++] = (uint8_t)byte;
        }
        khil_session_feed(&session, batch, n);
    }
}

/* Fault handler hook (board.h): a LOGS frame with the reason, then a FAIL answer to the
 * request that was running, so the host sees the cause instead of a timeout. The board
 * resets afterwards; the host has to connect again. */
void app_report_fault(const char *reason)
{
    uint8_t frame[KHIL_UART_MAX_FRAME];
    size_t len = strlen(reason);
    if (len > KHIL_UART_MAX_PAYLOAD) {
        len = KHIL_UART_MAX_PAYLOAD;
    }
    const uint16_t flags =
        KHIL_FLAG_FAIL | KHIL_FLAG_IS_ZEPHYR | KHIL_FLAG_FIRST | KHIL_FLAG_LAST;
    size_t n = khil_frame_encode(KHIL_MSG_LOGS, KHIL_FLOW_TRANSMISSION, flags,
                                 (const uint8_t *)reason, len, frame, sizeof(frame));
    board_uart_write(frame, n);
    int busy = khil_session_busy_request(&session);
    if (busy >= 0) {
        n = khil_frame_encode((uint8_t)busy, KHIL_FLOW_TRANSMISSION, flags,
                              (const uint8_t *)reason, len, frame, sizeof(frame));
        board_uart_write(frame, n);
    }
}
