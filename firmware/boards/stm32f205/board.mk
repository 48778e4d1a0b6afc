# stm32f205: STM32F205 (Cortex-M3), USART1. A Renode board (renode/stm32f205.repl).
# Timing: simulated, SysTick counts instructions (Renode PerformanceInMips 1000: one instruction
# per ns, as QEMU -icount shift=0). On the real board build with BOARD_TIMER=dwt BOARD_TIMING=cycles.
BOARD_TIMER ?= systick
BOARD_TIMING ?= instructions
CPU_FLAGS := -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
BOARD_SRCS := boards/stm32f205/board.c \
              boards/common/cortexm_startup.c \
              boards/common/timer_$(BOARD_TIMER).c \
              boards/common/stm32_usart.c
RENODE_PLATFORM := stm32f205.repl
# Model + tensor arena region (bytes): half of the 128 KiB SRAM; data, bss and stack take the rest.
ML_REGION_SIZE ?= 65536
STACK_SIZE ?= 16384
