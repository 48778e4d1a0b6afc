/* The interface every board folder implements (firmware/boards/<board>/).
 *
 * The application (main.c) and the protocol code only see this header; a new board (a real
 * MCU or another simulated one) is one more folder providing these functions, a linker script
 * and a board.mk.
 */
#ifndef KHIL_BOARD_H
#define KHIL_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* How board_timer_ticks() relates to the work the CPU did. */
typedef enum {
    /* QEMU with -icount shift=0: every guest instruction advances virtual time by 1 ns, so a
     * timer running at the board clock counts instructions (ticks * 1e9 / hz). */
    BOARD_TIMING_INSTRUCTIONS = 0,
    /* Real silicon: ticks are CPU clock cycles (DWT CYCCNT or SysTick at the core clock). */
    BOARD_TIMING_CYCLES = 1
} board_timing_kind;

extern const char board_name[];

/* Sets up clocks, the UART (interrupt-driven receive into a ring buffer) and the timer. */
void board_init(void);

/* Blocks until the byte is handed to the UART transmitter. */
void board_uart_putc(uint8_t byte);
void board_uart_write(const uint8_t *bytes, size_t len);
/* Returns the next received byte, or -1 if none is waiting (never blocks). */
int board_uart_poll(void);
/* Returns the next received byte, sleeping (WFI) until one arrives. */
uint8_t board_uart_getc(void);
/* Sleeps until a byte arrives or timeout_ticks of the board timer pass; returns the byte or -1. */
int board_uart_getc_timeout(uint64_t timeout_ticks);
/* Bytes lost because the receive ring buffer was full (0 in a healthy run). */
uint32_t board_uart_rx_overruns(void);

/* Free-running 64-bit counter (see board_timing()), and its rate in ticks per second. */
uint64_t board_timer_ticks(void);
uint32_t board_timer_hz(void);
board_timing_kind board_timing(void);

/* Resets the whole chip (SYSRESETREQ); never returns. */
void board_reset(void) __attribute__((noreturn));

/* Called by the fault handler with a one-line description of the fault, before the board
 * resets. Implemented by the application (it knows the wire protocol). Must not fault. */
void app_report_fault(const char *reason);

#endif /* KHIL_BOARD_H */
