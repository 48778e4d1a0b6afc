/* Reset entry, C runtime set-up and the fault reporter shared by every Cortex-M board.
 *
 * The board's linker script provides the section symbols below; the board's vector table
 * (board.c) points at these handlers.
 */
#include <stdint.h>
#include <string.h>

#include "../board.h"
#include "cortexm.h"

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __vectors_start[];
extern uint32_t __ram_start[], __ram_end[];

int main(void);

void cortexm_reset_handler(void)
{
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* Builds that use the FP/vector registers (the M55's Helium kernels): coprocessors 10 and
     * 11 enabled before any code (memcpy included) may touch them. */
    SCB_CPACR |= SCB_CPACR_CP10_CP11_FULL;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    /* .data lives in flash on a real board and is copied to RAM; on the QEMU boards it is
     * loaded in place (load address = run address) and nothing needs copying. */
    size_t data_bytes = (size_t)((uintptr_t)__data_end - (uintptr_t)__data_start);
    if ((uintptr_t)__data_load != (uintptr_t)__data_start) {
        memcpy(__data_start, __data_load, data_bytes);
    }
    memset(__bss_start, 0, (size_t)((uintptr_t)__bss_end - (uintptr_t)__bss_start));

    SCB_VTOR = (uint32_t)(uintptr_t)__vectors_start;
    /* Separate MemManage/Bus/Usage faults give a precise reason; divide by zero traps
     * instead of silently yielding 0. */
    SCB_SHCSR |= SCB_SHCSR_FAULTS_ENA;
    SCB_CCR |= SCB_CCR_DIV_0_TRP;

    main();
    board_reset();
}

/* The fault reporter runs on its own stack: a fault caused by a stack overflow must still be
 * reported. */
uint64_t cortexm_fault_stack[128];

static char *put_str(char *p, const char *s)
{
    while (*s) {
        *p++ = *s++;
    }
    return p;
}

static char *put_hex(char *p, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    *p++ = '0';
    *p++ = 'x';
    for (int shift = 28; shift >= 0; shift -= 4) {
        *p++ = digits[(v >> shift) & 0xFu];
    }
    return p;
}

static char *put_dec(char *p, uint32_t v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}

static const char *exception_name(uint32_t number)
{
    switch (number) {
    case 2: return "NMI";
    case 3: return "HardFault";
    case 4: return "MemManage fault";
    case 5: return "BusFault";
    case 6: return "UsageFault";
    case 7: return "SecureFault";
    default: return "unexpected exception";
    }
}

/* Called from the naked entry below with the stacked exception frame (r0-r3, r12, lr, pc,
 * xpsr) and EXC_RETURN. */
void cortexm_fault_report(const uint32_t *frame, uint32_t exc_return) __attribute__((used, noreturn));
void cortexm_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    uint32_t number = ipsr & 0x1FFu;

    char text[200];
    char *p = text;
    p = put_str(p, exception_name(number));
    if (number > 15u) {
        p = put_str(p, " (IRQ ");
        p = put_dec(p, number - 16u);
        p = put_str(p, ")");
    } else if (number < 2u || number > 7u) {
        p = put_str(p, " ");
        p = put_dec(p, number);
    }
    uintptr_t f = (uintptr_t)frame;
    /* Only read the frame if it lies in RAM: after a stack overflow it may not. */
    if (f >= (uintptr_t)__ram_start && f + 32u <= (uintptr_t)__ram_end && (f & 3u) == 0u) {
        p = put_str(p, ": pc=");
        p = put_hex(p, frame[6]);
        p = put_str(p, " lr=");
        p = put_hex(p, frame[5]);
    } else {
        p = put_str(p, ": stack pointer ");
        p = put_hex(p, (uint32_t)f);
        p = put_str(p, " outside RAM (stack overflow?)");
    }
    p = put_str(p, " cfsr=");
    p = put_hex(p, SCB_CFSR);
    p = put_str(p, " hfsr=");
    p = put_hex(p, SCB_HFSR);
    p = put_str(p, " bfar=");
    p = put_hex(p, SCB_BFAR);
    p = put_str(p, " exc_return=");
    p = put_hex(p, exc_return);
    *p = '\0';

    app_report_fault(text);
    board_reset();
}

__attribute__((naked)) void cortexm_fault_handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov r1, lr\n\t"
        "ldr r2, =cortexm_fault_stack + 1024\n\t"
        "mov sp, r2\n\t"
        "b cortexm_fault_report\n\t"
        ".ltorg\n\t");
}

/* Any interrupt the board did not expect is reported like a fault. */
__attribute__((naked)) void cortexm_default_handler(void)
{
    __asm__ volatile("b cortexm_fault_handler\n\t");
}

void board_reset(void)
{
    __asm__ volatile("dsb" ::: "memory");
    SCB_AIRCR = SCB_AIRCR_VECTKEY | SCB_AIRCR_SYSRESETREQ;
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
        cpu_wfi();
    }
}
