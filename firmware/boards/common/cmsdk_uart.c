/* CMSDK APB UART: register layout from the Cortex-M System Design Kit TRM (DATA, STATE, CTRL,
 * INTSTATUS/INTCLEAR, BAUDDIV). Implements the board_uart_* part of board.h. */
#include "cmsdk_uart.h"

#include "../board.h"
#include "cortexm.h"

typedef struct {
    volatile uint32_t data;
    volatile uint32_t state;     /* bit 0 TX full, bit 1 RX full, bit 2/3 TX/RX overrun */
    volatile uint32_t ctrl;      /* bit 0 TX enable, bit 1 RX enable, bit 3 RX interrupt enable */
    volatile uint32_t intstatus; /* write 1 to clear (INTCLEAR) */
    volatile uint32_t bauddiv;
} cmsdk_uart_regs;

#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)
#define STATE_OVERRUNS (3u << 2)
#define CTRL_TX_EN (1u << 0)
#define CTRL_RX_EN (1u << 1)
#define CTRL_RX_INT_EN (1u << 3)
#define INT_RX (1u << 1)
#define INT_RX_OVERRUN (1u << 3)

/* Power of two; holds more than one maximum-size UART frame (136 bytes). */
#define RX_RING_SIZE 1024u

static cmsdk_uart_regs *uart;
static uint8_t rx_ring[RX_RING_SIZE];
static volatile uint32_t rx_head; /* written by the ISR */
static volatile uint32_t rx_tail; /* written by the reader */
static volatile uint32_t rx_overruns;

void cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baudrate, unsigned rx_irq)
{
    uart = (cmsdk_uart_regs *)base;
    uart->ctrl = 0;
    /* The divider has a minimum of 16; QEMU ignores the rate, real hardware needs it. */
    uint32_t div = pclk_hz / baudrate;
    uart->bauddiv = div < 16u ? 16u : div;
    uart->state = STATE_OVERRUNS;
    uart->intstatus = 0xFu;
    uart->ctrl = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN;
    nvic_enable_irq(rx_irq);
}

void cmsdk_uart_rx_isr(void)
{
    uart->intstatus = INT_RX | INT_RX_OVERRUN;
    while (uart->state & STATE_RX_FULL) {
        uint8_t byte = (uint8_t)uart->data;
        uint32_t head = rx_head;
        if (head - rx_tail < RX_RING_SIZE) {
            rx_ring[head % RX_RING_SIZE] = byte;
            rx_head = head + 1u;
        } else {
            rx_overruns = rx_overruns + 1u;
        }
    }
    if (uart->state & STATE_OVERRUNS) {
        uart->state = STATE_OVERRUNS;
        rx_overruns = rx_overruns + 1u;
    }
}

void board_uart_putc(uint8_t byte)
{
    while (uart->state & STATE_TX_FULL) {
    }
    uart->data = byte;
}

void board_uart_write(const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        board_uart_putc(bytes[i]);
    }
}

int board_uart_poll(void)
{
    uint32_t tail = rx_tail;
    if (tail == rx_head) {
        return -1;
    }
    uint8_t byte = rx_ring[tail % RX_RING_SIZE];
    rx_tail = tail + 1u;
    return byte;
}

uint8_t board_uart_getc(void)
{
    for (;;) {
        irq_disable();
        int byte = board_uart_poll();
        if (byte >= 0) {
            irq_enable();
            return (uint8_t)byte;
        }
        /* WFI with interrupts masked still wakes on a pending interrupt, which then runs as
         * soon as they are unmasked: no lost wake-up between the check and the sleep. */
        cpu_wfi();
        irq_enable();
    }
}

int board_uart_getc_timeout(uint64_t timeout_ticks)
{
    uint64_t start = board_timer_ticks();
    for (;;) {
        irq_disable();
        int byte = board_uart_poll();
        if (byte >= 0) {
            irq_enable();
            return byte;
        }
        if (board_timer_ticks() - start >= timeout_ticks) {
            irq_enable();
            return -1;
        }
        /* The timer's own interrupt wakes us at least once per timer period. */
        cpu_wfi();
        irq_enable();
    }
}

uint32_t board_uart_rx_overruns(void) { return rx_overruns; }
