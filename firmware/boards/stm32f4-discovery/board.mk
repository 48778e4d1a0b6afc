# stm32f4-discovery: STM32F407VG (Cortex-M4), USART1. A Renode board (renode/stm32f4_discovery.repl).
# Timing: simulated, SysTick counts instructions (Renode PerformanceInMips 1000: one instruction
# per ns, as QEMU -icount shift=0). On the real board build with BOARD_TIMER=dwt BOARD_TIMING=cycles.
BOARD_TIMER ?= systick
BOARD_TIMING ?= instructions
CPU_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
BOARD_SRCS := boards/stm32f4-discovery/board.c \
              boards/common/cortexm_startup.c \
              boards/common/timer_$(BOARD_TIMER).c \
              boards/common/stm32_usart.c
RENODE_PLATFORM := stm32f4_discovery.repl
# Model + tensor arena region (bytes): half of the 128 KiB SRAM; data, bss and stack take the rest.
ML_REGION_SIZE ?= 65536
STACK_SIZE ?= 16384
