/* STM32F205 (Cortex-M3 at 120 MHz; e.g. the Netduino 2), as simulated by Renode
 * (renode/stm32f205.repl). Memory map (RM0033 section 2.3): 1 MiB flash at 0x08000000
 * (aliased at 0 when booting from flash), 128 KiB contiguous SRAM1+SRAM2 at 0x20000000;
 * USART1 at 0x40011000 on APB2 (60 MHz), global interrupt IRQ 37. The .repl check
 * (tests/renode/test_renode_platforms.py) reads the values below from this file. */
#include "../board.h"
#include "../common/cortexm.h"
#include "../common/stm32_usart.h"

#define STM32F2_CPU_HZ 120000000u
#define STM32F2_APB2_HZ 60000000u
#define STM32F2_USART1_BASE 0x40011000u
#define STM32F2_USART1_IRQ 37u
#define STM32F2_RCC_APB2ENR 0x40023844u
#define RCC_APB2ENR_USART1EN (1u << 4)
#define UART_BAUDRATE 115200u

const char board_name[] = "stm32f205";

typedef void (*vector_fn)(void);
extern uint32_t __stack_top[];

/* 16 system exceptions, then external IRQs 0..80 (only USART1 is enabled). */
#define DH cortexm_default_handler
#define DH8 DH, DH, DH, DH, DH, DH, DH, DH
__attribute__((section(".vectors"), used)) const vector_fn board_vectors[16 + 81] = {
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
    DH8, DH8, DH8, DH8,    /* IRQ 0..31 */
    DH, DH, DH, DH, DH,    /* IRQ 32..36 */
    stm32_usart_isr,       /* IRQ 37: USART1 */
    DH8, DH8, DH8, DH8, DH8, DH, DH, DH, /* IRQ 38..80 */
};

void board_init(void)
{
    /* The USART's bus clock (simulators ignore it; silicon needs it, and PA9/PA10 in AF7). */
    KHIL_REG32(STM32F2_RCC_APB2ENR) |= RCC_APB2ENR_USART1EN;
    cortexm_timer_init(STM32F2_CPU_HZ);
    stm32_usart_init(STM32F2_USART1_BASE, STM32F2_APB2_HZ, UART_BAUDRATE, STM32F2_USART1_IRQ);
    irq_enable();
}

/* Simulated (Renode at PerformanceInMips 1000, or QEMU -icount shift=0: one instruction per
 * nanosecond) the timer counts instructions; on the real board, built with
 * BOARD_TIMING=cycles, CPU cycles. */
board_timing_kind board_timing(void)
{
#ifdef KHIL_TIMING_IS_CYCLES
    return BOARD_TIMING_CYCLES;
#else
    return BOARD_TIMING_INSTRUCTIONS;
#endif
}
