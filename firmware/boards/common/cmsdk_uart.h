/* Driver for the Arm CMSDK APB UART (the UART of the MPS2/MPS3 FPGA images and of QEMU's
 * mps2-* / mps3-* machines). Transmit is polled; receive is interrupt-driven into a ring
 * buffer so the CPU can sleep (WFI) while waiting for the host. */
#ifndef KHIL_CMSDK_UART_H
#define KHIL_CMSDK_UART_H

#include <stddef.h>
#include <stdint.h>

void cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baudrate, unsigned rx_irq);
/* The board's vector table points the UART's RX interrupt here. */
void cmsdk_uart_rx_isr(void);

#endif /* KHIL_CMSDK_UART_H */
