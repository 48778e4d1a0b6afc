# mps2-an386 (QEMU): Cortex-M4, CMSDK UART, SysTick timer (QEMU has no DWT).
CPU_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
BOARD_SRCS := boards/mps2-an386/board.c \
              boards/common/cortexm_startup.c \
              boards/common/timer_systick.c \
              boards/common/cmsdk_uart.c
QEMU_MACHINE := mps2-an386
# Model + tensor arena region (bytes); the rest of the 4 MiB RAM holds data, bss and stack.
ML_REGION_SIZE ?= 3670016
STACK_SIZE ?= 32768
