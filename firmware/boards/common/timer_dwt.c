/* Board timer on the DWT cycle counter (real Cortex-M3/M4/M7/M33/M55 silicon): exact CPU
 * cycles. CYCCNT is 32 bits; SysTick interrupts at least once per CYCCNT period so the
 * software high word never misses a wrap. QEMU 7.2 does not emulate DWT: QEMU boards use
 * timer_systick.c instead. */
#include <stdint.h>

#include "../board.h"
#include "cortexm.h"

static uint32_t timer_hz;
static uint32_t last_low;
static uint32_t high_word;

static uint64_t sample(void)
{
    uint32_t primask = irq_save();
    uint32_t low = DWT_CYCCNT;
    if (low < last_low) {
        high_word++;
    }
    last_low = low;
    uint64_t ticks = ((uint64_t)high_word << 32) | low;
    irq_restore(primask);
    return ticks;
}

void cortexm_timer_init(uint32_t cpu_hz)
{
    timer_hz = cpu_hz;
    SCB_DEMCR |= SCB_DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    /* 2^24 cycles between SysTick interrupts is far below the 2^32-cycle CYCCNT period. */
    SYST_CSR = 0;
    SYST_RVR = SYST_MAX_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE_CPU;
}

void cortexm_systick_handler(void) { (void)sample(); }

uint64_t board_timer_ticks(void) { return sample(); }

uint32_t board_timer_hz(void) { return timer_hz; }
