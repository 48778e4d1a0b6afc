/* QEMU mps3-an547: Arm MPS3 FPGA image AN547 (Corstone SSE-300), one Cortex-M55 at 32 MHz.
 * The CPU boots in Secure state, so everything is used through its Secure alias (address bit
 * 28 set): ITCM 512 KiB at 0x10000000 (code), DTCM 512 KiB at 0x30000000 (data, stack),
 * ISRAM 4 MiB at 0x31000000 (model + arena; behind an MPC whose reset state is Secure),
 * CMSDK UART0 at 0x59303000 with RX on IRQ 33 (QEMU 7.2 `info mtree`, AN547 memory map). */
#include "../board.h"
#include "../common/cmsdk_uart.h"
#include "../common/cortexm.h"

#define AN547_CPU_HZ 32000000u
#define AN547_UART0_BASE 0x59303000u
#define AN547_UART0_RX_IRQ 33u
#define UART_BAUDRATE 115200u

const char board_name[] = "mps3-an547";

typedef void (*vector_fn)(void);
extern uint32_t __stack_top[];

/* 16 system exceptions, then external IRQs 0..47 (only UART0 RX is enabled). */
#define DH cortexm_default_handler
#define DH8 DH, DH, DH, DH, DH, DH, DH, DH
__attribute__((section(".vectors"), used, aligned(256))) const vector_fn board_vectors[64] = {
    (vector_fn)(uintptr_t)__stack_top,
    cortexm_reset_handler,
    cortexm_fault_handler, /* NMI */
    cortexm_fault_handler, /* HardFault */
    cortexm_fault_handler, /* MemManage */
    cortexm_fault_handler, /* BusFault */
    cortexm_fault_handler, /* UsageFault */
    cortexm_fault_handler, /* SecureFault */
    DH, DH, DH,            /* reserved */
    DH,                    /* SVCall */
    DH,                    /* DebugMonitor */
    DH,                    /* reserved */
    DH,                    /* PendSV */
    cortexm_systick_handler,
    DH8, DH8, DH8,            /* IRQ 0..23 */
    DH8,                      /* IRQ 24..31 */
    DH, cmsdk_uart_rx_isr, DH, DH, DH, DH, DH, DH, /* IRQ 32..39: 33 = UART0 RX */
    DH8,                      /* IRQ 40..47 */
};

void board_init(void)
{
    cortexm_timer_init(AN547_CPU_HZ);
    cmsdk_uart_init(AN547_UART0_BASE, AN547_CPU_HZ, UART_BAUDRATE, AN547_UART0_RX_IRQ);
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
