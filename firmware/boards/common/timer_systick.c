/* Board timer on SysTick: the 24-bit down counter at the CPU clock, extended to 64 bits by
 * counting wraps in the SysTick interrupt (one interrupt per 2^24 ticks, so it barely perturbs
 * the instruction counts it measures). Used by the QEMU boards: QEMU 7.2 has no DWT. */
#include <stdint.h>

#include "../board.h"
#include "cortexm.h"

static volatile uint32_t systick_wraps;
static uint32_t timer_hz;

void cortexm_timer_init(uint32_t cpu_hz)
{
    timer_hz = cpu_hz;
    SYST_CSR = 0;
    SYST_RVR = SYST_MAX_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE_CPU;
}

void cortexm_systick_handler(void) { systick_wraps = systick_wraps + 1u; }

uint64_t board_timer_ticks(void)
{
    uint32_t primask = irq_save();
    uint32_t wraps = systick_wraps;
    uint32_t value = SYST_CVR;
    /* A wrap whose interrupt has not run yet (we masked it) must be counted here; re-read
     * the counter so the value belongs to the new period. */
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) {
        value = SYST_CVR;
        wraps++;
    }
    irq_restore(primask);
    return (uint64_t)wraps * (SYST_MAX_RELOAD + 1u) + (SYST_MAX_RELOAD - value);
}

uint32_t board_timer_hz(void) { return timer_hz; }
