/* QEMU mps2-an386: Arm MPS2 FPGA image AN386, one Cortex-M4 at 25 MHz.
 * Memory map (QEMU 7.2 `info mtree`): 4 MiB SSRAM1 at 0x00000000 (code), 4 MiB SSRAM2/3 at
 * 0x20000000 (data), 16 MiB PSRAM at 0x21000000; CMSDK UART0 at 0x40004000, RX on IRQ 0. */
#include "../board.h"
#include "../common/cmsdk_uart.h"
#include "../common/cortexm.h"

#define AN386_CPU_HZ 25000000u
#define AN386_UART0_BASE 0x40004000u
#define AN386_UART0_RX_IRQ 0u
#define UART_BAUDRATE 115200u

const char board_name[] = "mps2-an386";

typedef void (*vector_fn)(void);
extern uint32_t __stack_top[];

/* 16 system exceptions, then external IRQs 0..15 (only UART0 RX is enabled). */
#define DH cortexm_default_handler
__attribute__((section(".vectors"), used)) const vector_fn board_vectors[32] = {
    (vector_fn)(uintptr_t)__stack_top,
    cortexm_reset_handler,
    cortexm_fault_handler, /* NMI */
    cortexm_fault_handler, /* HardFault */
    cortexm_fault_handler, /* MemManage */
    cortexm_fault_handler, /* BusFault */
    cortexm_fault_handler, /* UsageFault */
    DH, DH, DH, DH,        /* reserved */
    DH,                    /* SVCall */
    DH,                    /* DebugMonitor */
    DH,                    /* reserved */
    DH,                    /* PendSV */
    cortexm_systick_handler,
    cmsdk_uart_rx_isr, /* IRQ 0: UART0 RX */
    DH, DH, DH, DH, DH, DH, DH, DH, DH, DH, DH, DH, DH, DH, DH,
};

void board_init(void)
{
    cortexm_timer_init(AN386_CPU_HZ);
    cmsdk_uart_init(AN386_UART0_BASE, AN386_CPU_HZ, UART_BAUDRATE, AN386_UART0_RX_IRQ);
    irq_enable();
}

/* Under QEMU (-icount shift=0) the timer counts instructions; on the real FPGA board, built
 * with BOARD_TIMING=cycles, it counts CPU cycles. */
board_timing_kind board_timing(void)
{
#ifdef KHIL_TIMING_IS_CYCLES
    return BOARD_TIMING_CYCLES;
#else
    return BOARD_TIMING_INSTRUCTIONS;
#endif
}
