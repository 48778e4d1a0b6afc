/* Cortex-M system registers used by the boards (ARMv7-M / ARMv8-M Architecture Reference
 * Manual addresses; same on Cortex-M3/M4/M7/M33/M55). Written here instead of pulling in CMSIS. */
#ifndef KHIL_CORTEXM_H
#define KHIL_CORTEXM_H

#include <stdint.h>

#define KHIL_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* System control block */
#define SCB_ICSR KHIL_REG32(0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)
#define SCB_VTOR KHIL_REG32(0xE000ED08u)
#define SCB_AIRCR KHIL_REG32(0xE000ED0Cu)
#define SCB_AIRCR_VECTKEY (0x05FAu << 16)
#define SCB_AIRCR_SYSRESETREQ (1u << 2)
#define SCB_CCR KHIL_REG32(0xE000ED14u)
#define SCB_CCR_DIV_0_TRP (1u << 4)
#define SCB_CPACR KHIL_REG32(0xE000ED88u)
#define SCB_CPACR_CP10_CP11_FULL (0xFu << 20)
#define SCB_SHCSR KHIL_REG32(0xE000ED24u)
#define SCB_SHCSR_FAULTS_ENA ((1u << 16) | (1u << 17) | (1u << 18)) /* MemManage, Bus, Usage */
#define SCB_CFSR KHIL_REG32(0xE000ED28u)
#define SCB_HFSR KHIL_REG32(0xE000ED2Cu)
#define SCB_MMFAR KHIL_REG32(0xE000ED34u)
#define SCB_BFAR KHIL_REG32(0xE000ED38u)
#define SCB_DEMCR KHIL_REG32(0xE000EDFCu)
#define SCB_DEMCR_TRCENA (1u << 24)

/* SysTick: 24-bit down counter */
#define SYST_CSR KHIL_REG32(0xE000E010u)
#define SYST_RVR KHIL_REG32(0xE000E014u)
#define SYST_CVR KHIL_REG32(0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CPU (1u << 2)
#define SYST_MAX_RELOAD 0x00FFFFFFu

/* NVIC */
#define NVIC_ISER(n) KHIL_REG32(0xE000E100u + 4u * (n))
#define NVIC_ICPR(n) KHIL_REG32(0xE000E280u + 4u * (n))

/* DWT cycle counter (real silicon; QEMU 7.2 does not emulate it) */
#define DWT_CTRL KHIL_REG32(0xE0001000u)
#define DWT_CYCCNT KHIL_REG32(0xE0001004u)
#define DWT_LAR KHIL_REG32(0xE0001FB0u) /* lock access (Cortex-M7); write-ignored elsewhere */
#define DWT_CTRL_CYCCNTENA (1u << 0)

static inline void nvic_enable_irq(unsigned irq)
{
    NVIC_ICPR(irq / 32u) = 1u << (irq % 32u);
    NVIC_ISER(irq / 32u) = 1u << (irq % 32u);
}

static inline uint32_t irq_save(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void irq_restore(uint32_t primask)
{
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
}

static inline void irq_enable(void) { __asm__ volatile("cpsie i" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void cpu_wfi(void) { __asm__ volatile("dsb\n\twfi" ::: "memory"); }

/* Shared by the board folders: the reset entry and the handlers the vector tables name. */
void cortexm_reset_handler(void);
void cortexm_fault_handler(void);
void cortexm_default_handler(void);
void cortexm_systick_handler(void);
/* Starts the board timer (timer_systick.c or timer_dwt.c) counting at cpu_hz. */
void cortexm_timer_init(uint32_t cpu_hz);

#endif /* KHIL_CORTEXM_H */
