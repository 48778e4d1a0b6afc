/* STM32F4 USART (RM0090 section 30.6: SR, DR, BRR, CR1..CR3). Implements the board_uart_*
 * part of board.h the same way cmsdk_uart.c does: polled transmit, a receive ring filled by
 * the RXNE interrupt, WFI while waiting. */
#include "stm32_usart.h"

#include "../board.h"
#include "cortexm.h"

typedef struct {
    volatile uint32_t sr;  /* bit 3 ORE, bit 5 RXNE, bit 7 TXE */
    volatile uint32_t dr;
    volatile uint32_t brr; /* mantissa << 4 | fraction: pclk / baudrate with 16x oversampling */
    volatile uint32_t cr1; /* bit 2 RE, bit 3 TE, bit 5 RXNEIE, bit 13 UE */
    volatile uint32_t cr2;
    volatile uint32_t cr3;
} stm32_usart_regs;

#define SR_ORE (1u << 3)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_RXNEIE (1u << 5)
#define CR1_UE (1u << 13)

/* Power of two; holds more than one maximum-size UART frame (136 bytes). */
#define RX_RING_SIZE 1024u

static stm32_usart_regs *usart;
static uint8_t rx_ring[RX_RING_SIZE];
static volatile uint32_t rx_head; /* written by the ISR */
static volatile uint32_t rx_tail; /* written by the reader */
static volatile uint32_t rx_overruns;

void stm32_usart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baudrate, unsigned rx_irq)
{
    usart = (stm32_usart_regs *)base;
    usart->cr1 = 0;
    usart->brr = (pclk_hz + baudrate / 2u) / baudrate;
    usart->cr2 = 0;
    usart->cr3 = 0;
    usart->cr1 = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
    nvic_enable_irq(rx_irq);
}

void stm32_usart_isr(void)
{
    /* Reading SR then DR clears RXNE and ORE. */
    uint32_t sr;
    while ((sr = usart->sr) & (SR_RXNE | SR_ORE)) {
        uint8_t byte = (uint8_t)usart->dr;
        if (sr & SR_ORE) {
            rx_overruns = rx_overruns + 1u;
        }
        if (!(sr & SR_RXNE)) {
            continue;
        }
        uint32_t head = rx_head;
        if (head - rx_tail < RX_RING_SIZE) {
            rx_ring[head % RX_RING_SIZE] = byte;
            rx_head = head + 1u;
        } else {
            rx_overruns = rx_overruns + 1u;
        }
    }
}

void board_uart_putc(uint8_t byte)
{
    while (!(usart->sr & SR_TXE)) {
    }
    usart->dr = byte;
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
        /* A pending interrupt wakes WFI even while masked: no lost wake-up. */
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
