# mps2-an386: Cortex-M4, CMSDK UART.
# Timing: under QEMU (the default) SysTick counts instructions (-icount shift=0; QEMU 7.2 has no
# DWT). On the real FPGA board build with BOARD_TIMER=dwt BOARD_TIMING=cycles.
BOARD_TIMER ?= systick
BOARD_TIMING ?= instructions
CPU_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
BOARD_SRCS := boards/mps2-an386/board.c \
              boards/common/cortexm_startup.c \
              boards/common/timer_$(BOARD_TIMER).c \
              boards/common/cmsdk_uart.c
QEMU_MACHINE := mps2-an386
# Model + tensor arena region (bytes); the rest of the 4 MiB RAM holds data, bss and stack.
ML_REGION_SIZE ?= 3670016
STACK_SIZE ?= 32768
