/* Driver for the STM32F1/F2/F4 USART (SR/DR/BRR/CR1 layout, RM0090 section 30.6), the UART
 * of the STM32F4 boards: Renode's UART.STM32_UART and QEMU's stm32f2xx-usart model it.
 * Transmit is polled; receive is interrupt-driven into a ring buffer (as cmsdk_uart). */
#ifndef KHIL_STM32_USART_H
#define KHIL_STM32_USART_H

#include <stdint.h>

void stm32_usart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baudrate, unsigned rx_irq);
/* The board's vector table points the USART's interrupt here. */
void stm32_usart_isr(void);

#endif /* KHIL_STM32_USART_H */
